"""LightningDataModules registered by name: `openvid` (tar shards), `folder` (video files), `yuv` (raw YUV),
`stills` (photos under synthetic camera motion, optionally mixed with shards), `device_clips` (the stills
recipe decoded once onto the training device)."""

# registers the built-ins
from vvc_lightning.datamodules import device_clips, folder, openvid, stills, yuv  # noqa: F401
from vvc_lightning.datamodules.base import VideoDataModule
from vvc_lightning.datamodules.device_clips import DeviceClipsDataModule
from vvc_lightning.datamodules.folder import FolderDataModule
from vvc_lightning.datamodules.openvid import OpenVidDataModule
from vvc_lightning.datamodules.stills import StillsDataModule
from vvc_lightning.datamodules.yuv import YUVDataModule

__all__ = [
    "DeviceClipsDataModule",
    "FolderDataModule",
    "OpenVidDataModule",
    "StillsDataModule",
    "VideoDataModule",
    "YUVDataModule",
]
