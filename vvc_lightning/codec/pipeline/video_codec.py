"""The real codec: a trained model turned into .vvc files (GoPs with overlap, batching, spatial tiling).

Encode: cut the video into overlapping GoPs (the last one padded in time), pad each frame to the
backbone stride by edge replication, run the backbone encoder on whole frames or overlapping spatial
tiles (several GoPs or GoP-tiles per pass), blend the tile latents with linear ramps into one latent per
GoP, and entropy-code that latent (one record per GoP). Decode: entropy-decode each GoP's latent, run the
backbone decoder on whole latents or overlapping latent tiles, blend the pixel tiles with linear ramps,
crop, blend the frames shared by adjacent GoPs (`theta * last_of_previous + (1 - theta) * first_of_next`)
and drop the temporal padding.

Options: `CodecOptions` (`codec.pipeline.options`); reading and writing files: `codec.pipeline.files`.
Tiles only when needed: a memory budget (`max_memory`; `codec.pipeline.memory`) covers each pass's GoP frames
and latent coding as well as the backbone (a GoP too long for it is refused up front), and gives
whole frames when `batch` of them fit, whole frames fewer per pass when one fits, else the largest tiles
that fit.
Encoder and decoder each plan from their own budget (tiles do not change the bitstream; the header's tile
fields record the encoder's choice). Tiled passes share GroupNorm statistics and attention inputs over
the whole frame (`codec.pipeline.tile_norm`, `norm_passes` statistics passes), so tiled and untiled coding
agree.

The latent codec codes all GoPs of a pass in one batched call: its entropy parameters come from integer
networks, so the scale indexes and means the decoder derives never depend on the batch size, thread
count, convolution backend or device. The backbone and the codec's float transforms (g_a, h_a, g_s) run
batched and are batch-size invariant on the CPU (`codec.pipeline.determinism`): `batch` never changes a byte
or a decoded pixel there. On a GPU only the entropy-coded symbols are guaranteed batch-invariant.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vvc_lightning.codec.entropy.gain import Gains
from vvc_lightning.codec.entropy.symbol_check import SymbolCheckError, bind_to_gop
from vvc_lightning.codec.pipeline import container as bitstream
from vvc_lightning.codec.pipeline.allocatable import is_out_of_memory, out_of_memory_as_error, usable_budget
from vvc_lightning.codec.pipeline.container import Header, RecordIndex
from vvc_lightning.codec.pipeline.determinism import batch_invariant, float_codec_parts, model_identity
from vvc_lightning.codec.pipeline.gop import GopBlender, GopPlan, check_frame_range, iter_gops
from vvc_lightning.codec.pipeline.memory import MemoryModel, Plan, gop_bytes, plan_budget
from vvc_lightning.codec.pipeline.options import CodecOptions
from vvc_lightning.codec.pipeline.parsed import ParsedStream, parse_stream
from vvc_lightning.codec.pipeline.protocol import CodingBackbone, CodingModel
from vvc_lightning.codec.pipeline.synthesis import in_precision, synthesis_dtype
from vvc_lightning.codec.pipeline.threads import ThreadGovernor
from vvc_lightning.codec.pipeline.tile_norm import default_overlap, run_on_tiles
from vvc_lightning.codec.pipeline.tiling import TileGrid, check_tile_options, plan_tiles
from vvc_lightning.errors import BitstreamError, ModelMismatchError, VVCError
from vvc_lightning.video.output_paths import decoded_bytes_limit
from vvc_lightning.video.video_io import Video, frames_to_tensor, tensor_to_frames


@contextlib.contextmanager
def _inference(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no autograd for the duration; the training flag is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if was_training:
            model.train(True)


class VideoCodec:
    """Encode a Video to .vvc bytes and back with a VideoCompressionModel already in memory.

    options: how it codes (`CodecOptions`; None: the defaults), with `overrides` by field name on top,
    e.g. `VideoCodec(model, gop=9, batch=2)`. The checks that need the model run here: GoP length and tile
    sizes against the backbone strides, the quality against the model's range. Decoding takes
    gop/overlap/theta/quality from the file and plans its own tiles.
    """

    def __init__(self, model: CodingModel, options: CodecOptions | None = None, **overrides: Any) -> None:
        options = options if options is not None else CodecOptions()
        if overrides:
            options = options.replace(**overrides)
        if options.gop is None:
            options = options.replace(gop=int(model.gop))
        self.model = model
        self.options = options
        self.gains = model.codec.rate(
            options.quality, exact=True
        )  # what every GoP is coded at (None: fixed rate)
        self.quality = None if self.gains is None else self.gains.quality
        overlap = options.tile_overlap
        self.tile_overlap = default_overlap(self.backbone) if overlap is None else overlap  # pixels
        self.thread_history: list[int] = []  # threads each pass of the last run used (codec.threads)
        self.timings: dict[str, float] = {}
        self._plans: dict[tuple[str, int, int, int], Plan] = {}
        self._budget = options.max_memory  # that of the last plan: less where the process may not allocate it
        self.synthesis = synthesis_dtype(options.synthesis, self.device)  # None: fp32
        GopPlan(1, self.gop, options.overlap, self.stride_t)  # the GoP length against the temporal stride
        if options.tile:
            check_tile_options(options.tile, self.tile_overlap, self.stride_s)
        elif options.tile is None:
            check_tile_options(4 * self.tile_overlap + self.stride_s, self.tile_overlap, self.stride_s)

    # ------------------------------------------------------------------------------ helpers
    @property
    def backbone(self) -> CodingBackbone:
        """The model's backbone (encoder / decoder)."""
        return self.model.backbone

    @property
    def gop(self) -> int:
        """Frames per GoP of what this codec encodes (the options', else the model's)."""
        return int(self.options.gop)

    @property
    def tile(self) -> int | None:
        """The tile size asked for (None: from the memory budget, 0: never tile)."""
        return self.options.tile

    @property
    def stride_s(self) -> int:
        return int(self.backbone.spatial_stride)

    @property
    def stride_t(self) -> int:
        return int(self.backbone.temporal_stride)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _padded(self, height: int, width: int) -> tuple[int, int]:
        s = self.stride_s
        return -(-height // s) * s, -(-width // s) * s

    def _plan(self, side: str, height: int, width: int, frames: int | None = None) -> Plan:
        """Tile grid (padded pixels) and items per pass of `side` ('encode'/'decode') for a frame size."""
        hp, wp = self._padded(height, width)
        frames = self.gop if frames is None else frames
        key = (side, hp, wp, frames)
        if key not in self._plans:
            if self.tile is None:
                latent = int(np.prod(self.backbone.latent_shape(frames, hp, wp)))
                per_gop = gop_bytes(side, frames, hp, wp, latent)
                self._budget, limit = usable_budget(self.options.max_memory)
                plan = plan_budget(MemoryModel(self.backbone), side, frames, hp, wp, self.options.batch,
                                   self._budget, self.tile_overlap, per_gop, limit)
            else:
                tile = self.tile if self.tile and (hp > self.tile or wp > self.tile) else 0
                grid = plan_tiles(hp, wp, tile, self.tile_overlap, self.stride_s)
                plan = Plan(grid, self.options.batch, tile)
            self._plans[key] = plan
        return self._plans[key]

    def _gops_per_pass(self, height: int, width: int, side: str = "encode", frames: int | None = None) -> int:
        """GoPs held in memory at once: enough for the plan's backbone items (GoPs, or GoP tiles)."""
        plan = self._plan(side, height, width, frames)
        return plan.gops or max(1, plan.items // plan.grid.count)

    def _tick(self, key: str, since: float) -> None:
        self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - since

    def _run_tiles(
        self, fn: Any, x: torch.Tensor, in_grid: TileGrid, out_grid: TileGrid, items: int | None = None
    ) -> torch.Tensor:
        """Apply `fn` to the tiles of x (G,C,T,H,W), `items` GoP-tiles per call, and blend the outputs.

        Tiled runs normalise with whole-frame statistics (`norm_passes` extra passes, see tile_norm).
        """
        start = time.perf_counter()
        batch, passes = items or self.options.batch, self.options.norm_passes
        with batch_invariant(self.backbone):
            out = run_on_tiles(self.backbone, fn, x, in_grid, out_grid, batch, passes)
        self._tick("backbone", start)
        return out

    # ------------------------------------------------------------------------------- encode
    def encode(self, video: Video) -> bytes:
        """A whole .vvc bitstream of `video`."""
        return self.encode_frames(video.frames, video.fps, video.num_frames)

    def encode_frames(self, frames: Iterable[np.ndarray], fps: float, num_frames: int | None = None) -> bytes:
        """A .vvc bitstream from RGB uint8 frames (H,W,3) given in order (any iterable)."""
        self.timings = {}
        t0 = time.perf_counter()
        payloads: list[bytes] = []
        state: _EncodeState | None = None
        model, opts = self.model, self.options
        with (_inference(model), ThreadGovernor(opts.threads) as threads,
              out_of_memory_as_error("encode", lambda: self._budget)):
            identity = model_identity(model)
            chunk: list[np.ndarray] = []
            # the plan (or a refusal) comes with the first frame, before a whole GoP is read
            counter = FrameCounter(frames, first=lambda h, w: self._plan("encode", h, w))
            for gop_frames, _ in iter_gops(counter, self.gop, opts.overlap):
                chunk.append(gop_frames)
                if len(chunk) >= self._gops_per_pass(*gop_frames.shape[1:3]):
                    state = state or self._encode_state(*gop_frames.shape[1:3])
                    payloads += self._encode_chunk(chunk, state)
                    chunk = []
                    threads.update()
            if chunk:
                state = state or self._encode_state(*chunk[0].shape[1:3])
                payloads += self._encode_chunk(chunk, state)
        self.thread_history = threads.history
        count = counter.count
        if state is None:
            raise VVCError("the video holds no frame to encode")
        if num_frames is not None and num_frames != count:
            raise VVCError(f"expected {num_frames} frames, read {count}")
        plan = GopPlan(count, self.gop, opts.overlap, self.stride_t)
        assert plan.num_gops == len(payloads), (plan, len(payloads))
        header = Header(
            width=state.width, height=state.height, frames=count, fps=float(fps), gop=self.gop,
            overlap=opts.overlap, theta=opts.theta, num_gops=len(payloads), latent_shape=state.latent,
            identity=identity, tile=state.plan.tile, tile_overlap=self.tile_overlap if state.plan.tile else 0,
            matrix=opts.matrix, range=opts.rng, checkpoint=str(getattr(model, "checkpoint_path", "") or ""),
            backbone=str(getattr(self.backbone, "registry_name", type(self.backbone).__name__)),
            quality=self.quality,
        )
        data = bitstream.pack(header, payloads)
        self._tick("total", t0)
        return data

    def _encode_state(self, height: int, width: int) -> _EncodeState:
        """What the first GoPs of an encode fix: frame size, padded size, plan and latent shape."""
        hp, wp = self._padded(height, width)
        latent = tuple(int(v) for v in self.backbone.latent_shape(self.gop, hp, wp))
        return _EncodeState(width, height, hp, wp, self._plan("encode", height, width), latent)

    def _encode_chunk(self, chunk: list[np.ndarray], state: _EncodeState) -> list[bytes]:
        """Payloads of a few GoPs (each (T,H,W,3) uint8); counts them in `state`."""
        x = torch.stack([frames_to_tensor(c) for c in chunk]).to(self.device)
        x = F.pad(x, (0, state.wp - state.width, 0, state.hp - state.height, 0, 0), mode="replicate")
        grid = state.plan.grid
        latent = self._run_tiles(self.backbone.encode, x, grid, grid.scaled(self.stride_s), state.plan.items)
        start = time.perf_counter()
        with batch_invariant(*float_codec_parts(self.model.codec)):
            coded = self.model.codec.compress(latent, self.gains, reconstruct=False)[0]
        first = state.gops_done
        # each GoP's check names its index
        payloads = [bind_to_gop(p, first + i) for i, p in enumerate(coded)]
        state.gops_done = first + len(payloads)
        self._tick("latent_codec", start)
        return payloads

    # ------------------------------------------------------------------------------- decode
    def open(self, data: bytes | ParsedStream, label: str = "bitstream") -> ParsedStream:
        """`data` parsed (once; a ParsedStream is not parsed again) and checked against this codec's model."""
        stream = parse_stream(data, label)
        header, label = stream.header, stream.label
        identity = model_identity(self.model)
        if header.identity != identity:
            raise ModelMismatchError(
                f"{label} was made with model {header.identity[:12]} (checkpoint '{header.checkpoint}') but "
                f"the loaded model is {identity[:12]}"
            )
        try:
            plan = GopPlan(header.frames, header.gop, header.overlap, self.stride_t)
        except VVCError as exc:
            raise BitstreamError(f"{label} header is inconsistent ({exc}); the file is damaged") from exc
        hp, wp = self._padded(header.height, header.width)
        expected = tuple(int(v) for v in self.backbone.latent_shape(header.gop, hp, wp))
        try:
            plan_tiles(hp, wp, header.tile, header.tile_overlap, self.stride_s)
        except VVCError as exc:
            raise BitstreamError(
                f"{label} header holds unusable tile settings ({exc}); the file is damaged"
            ) from exc
        if plan.num_gops != header.num_gops or expected != header.latent_shape or not 0 <= header.theta <= 1:
            raise BitstreamError(f"{label} header is inconsistent with its own sizes; the file is damaged")
        if (header.quality is None) != (self.model.codec.qualities == 0):
            raise BitstreamError(
                f"{label} header's quality {header.quality} does not fit the model; the file is damaged"
            )
        try:
            self.model.codec.rate(header.quality, exact=True)  # in range
        except VVCError as exc:
            raise BitstreamError(f"{label} header: {exc}; the file is damaged") from exc
        return stream

    def read_header(self, data: bytes | ParsedStream, label: str = "bitstream") -> tuple[Header, RecordIndex]:
        """Header and record index of a bitstream this codec's model can decode (see `open`)."""
        stream = self.open(data, label)
        return stream.header, stream.records

    def decode(self, data: bytes | ParsedStream, frames: tuple[int, int] | None = None,
               label: str = "bitstream") -> Video:
        """The video in a .vvc bitstream (or only frames [a, b) of it, decoding just the GoPs they need)."""
        stream = self.open(data, label)  # records checked against the file before any allocation
        header, label = stream.header, stream.label
        a, b = check_frame_range(frames, header.frames)
        need, limit = max(b - a, 0) * header.height * header.width * 3, decoded_bytes_limit()
        if need > limit:
            raise VVCError(
                f"{label} decodes to {need / 2**30:.1f} GiB of frames, more than this machine's limit of "
                f"{limit / 2**30:.1f} GiB; decode part of it (frames=(a, b)), or stream it to a file"
            )
        try:
            out = np.empty((max(b - a, 0), header.height, header.width, 3), np.uint8)
        except MemoryError as exc:
            raise VVCError(
                f"{label} decodes to {need / 2**30:.1f} GiB of frames, more memory than is free; decode part "
                "of it (frames=(a, b))"
            ) from exc
        for i, frame in enumerate(self.decode_frames(stream, frames)):
            out[i] = frame
        return Video(out, header.fps)

    def decode_frames(
        self, data: bytes | ParsedStream, frames: tuple[int, int] | None = None, label: str = "bitstream"
    ) -> Iterator[np.ndarray]:
        """RGB uint8 frames (H,W,3) of a .vvc bitstream in order, decoded a few GoPs at a time (bounded
        memory).

        Only frames [a, b) when `frames` is given, decoding just the GoPs they need. `self.timings["total"]`
        covers the decoding done when the iterator is exhausted.
        """
        self.timings = {}
        t0 = time.perf_counter()
        with (_inference(self.model), ThreadGovernor(self.options.threads) as threads,
              out_of_memory_as_error("decode", lambda: self._budget)):
            self.thread_history = threads.history
            stream = self.open(data, label)
            header, records = stream.header, stream.records
            gains = self.model.codec.rate(header.quality, exact=True)  # what every GoP was coded at
            plan = GopPlan(header.frames, header.gop, header.overlap, self.stride_t)
            a, b = check_frame_range(frames, header.frames)
            gops = plan.gops_for_frames(a, b)
            # the decoder's own tiles
            grid = self._plan("decode", header.height, header.width, header.gop).grid
            blender = GopBlender(plan, header.theta, gops.start)
            step = self._gops_per_pass(header.height, header.width, "decode", header.gop)
            for i in range(gops.start, gops.stop, step):
                chunk = [records[g] for g in range(i, min(i + step, gops.stop))]
                recs = self._decode_chunk(stream.data, chunk, header, grid, stream.label, gains)
                for rec in recs:
                    for f, frame in blender.push(rec[:, :, : header.height, : header.width]):
                        if a <= f < b:
                            self._tick("total", t0)
                            yield tensor_to_frames(frame[:, None])[0]
                            t0 = time.perf_counter()
                recs = rec = frame = None  # views of this pass: release it before the next pass runs
                threads.update()
        self._tick("total", t0)

    def _decode_chunk(
        self, data: bytes, records: list[bitstream.Record], header: Header, grid: TileGrid, label: str,
        gains: Gains | None,
    ) -> torch.Tensor:
        """Reconstructions (G,3,T,Hp,Wp) of a few GoP records."""
        start = time.perf_counter()
        payloads = [bind_to_gop(bitstream.read_payload(data, r, label), r.index) for r in records]
        try:
            with batch_invariant(*float_codec_parts(self.model.codec)):
                latent = self.model.codec.decompress(payloads, header.latent_shape, gains, self.synthesis)
        except Exception as exc:  # a damaged payload (or a codec bug): decode GoP by GoP to name the record
            if is_out_of_memory(exc):
                raise
            for r, payload in zip(records, payloads, strict=True):
                try:
                    self.model.codec.decompress([payload], header.latent_shape, gains)
                except SymbolCheckError as exc:
                    raise BitstreamError(
                        f"GoP {r.index} of {label}: decoded symbols fail their check (file damaged, or "
                        "decoded with a different model/build)"
                    ) from exc
                except BitstreamError as exc:
                    raise BitstreamError(f"GoP {r.index} of {label}: {exc}; the file is damaged") from exc
                except Exception as exc:
                    raise BitstreamError(f"GoP {r.index} of {label} does not decode ({exc})") from exc
            raise
        self._tick("latent_codec", start)
        items = self._plan("decode", header.height, header.width, header.gop).items
        decode = in_precision(self.backbone.decode, self.synthesis, self.device)
        return self._run_tiles(decode, latent, grid.scaled(self.stride_s), grid, items)


@dataclass
class _EncodeState:
    """What the first GoPs of an encode fix (frame size, padded size, plan, latent shape), and GoPs coded."""

    width: int
    height: int
    hp: int
    wp: int
    plan: Plan
    latent: tuple[int, ...]
    gops_done: int = 0


class FrameCounter:
    """Iterates over frames, counts them, notes their (H, W) and checks that they are RGB uint8 of one size.

    first: called with (H, W) of the first frame before it is passed on (e.g. to plan the memory).
    """

    def __init__(self, frames: Iterable[np.ndarray], first: Callable[[int, int], Any] | None = None) -> None:
        self.frames, self.count, self.shape, self.first = frames, 0, (0, 0), first

    def __iter__(self) -> Iterator[np.ndarray]:
        first = None
        for f in self.frames:
            if first is None:
                first = f.shape
                if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
                    raise VVCError(f"frames must be RGB uint8 (H,W,3), got {f.dtype} {f.shape}")
                self.shape = f.shape[:2]
                if self.first is not None:
                    self.first(*self.shape)
            elif f.shape != first:
                raise VVCError(
                    f"frame {self.count} is {f.shape[1]}x{f.shape[0]}, the first was {first[1]}x{first[0]}"
                )
            self.count += 1
            yield f

