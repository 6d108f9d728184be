"""LightningDataModules registered by name: `openvid` (tar shards), `folder` (video files), `yuv` (raw YUV)."""

from vvc_lightning.datamodules import folder, openvid, yuv  # noqa: F401  (registers the built-ins)
from vvc_lightning.datamodules.base import VideoDataModule
from vvc_lightning.datamodules.folder import FolderDataModule
from vvc_lightning.datamodules.openvid import OpenVidDataModule
from vvc_lightning.datamodules.yuv import YUVDataModule

__all__ = ["FolderDataModule", "OpenVidDataModule", "VideoDataModule", "YUVDataModule"]
