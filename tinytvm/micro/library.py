"""Export a build as a drop-in C library, the counterpart of microTVM's Model Library Format.

The folder holds the generated model (`<name>.h`, `<name>.c`), `tt_state.c` (save and restore
the trainable state), the small runtime it needs (`tt_crc32.c`), one documented header
(`tinytvm.h`), a Makefile fragment, a CMakeLists.txt with a Cortex-M7 toolchain file, and
`metadata.json`, which lets tools (the board projects, the protocol client, the CLI) use the
library without the Artifact. The C text comes from the templates in `runtime_c/library/`.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from string import Template

import numpy as np

from ..errors import TinyTVMError
from ..toolchain import RUNTIME_C

TEMPLATES = RUNTIME_C / "library"
METADATA = "metadata.json"
FORMAT_VERSION = 1
DEFAULT_STACK_BYTES = 16 * 1024
STATE_MAGIC = b"TTS1"
STATE_HEADER_BYTES = 16
STATE_CRC_BYTES = 4

_RUNTIME_FILES = ("tt_crc32.c", "tt_crc32.h")
_TOOLCHAIN_FILE = "cmake/arm-none-eabi-cortex-m7.cmake"
_C_TYPES = {"float32": "float", "int32": "int32_t", "int64": "int64_t", "int8": "int8_t",
            "uint8": "uint8_t", "bool": "bool"}


@dataclass(frozen=True)
class StateTensor:
    """One trainable array in the saved state: its weight name, C symbol and payload slice."""

    name: str
    symbol: str
    shape: tuple[int, ...]
    dtype: str
    offset: int
    nbytes: int


@dataclass(frozen=True)
class Library:
    """An exported library on disk (what `metadata.json` says about it)."""

    path: Path
    name: str
    target: str
    input_shape: tuple[int, ...]
    num_classes: int
    arena_bytes: int
    trainable_bytes: int
    frozen_bytes: int
    stack_bytes: int
    model_id: int
    state: tuple[StateTensor, ...]
    files: tuple[str, ...]

    @property
    def input_elems(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def state_payload_bytes(self) -> int:
        return sum(t.nbytes for t in self.state)

    @property
    def state_bytes(self) -> int:
        return STATE_HEADER_BYTES + self.state_payload_bytes + STATE_CRC_BYTES

    @property
    def header(self) -> Path:
        return self.path / "tinytvm.h"

    @property
    def sources(self) -> list[Path]:
        return [self.path / f for f in self.files if f.endswith(".c")]

    @classmethod
    def load(cls, path: str | Path) -> Library:
        path = Path(path)
        meta_file = path / METADATA
        try:
            meta = json.loads(meta_file.read_text())
        except FileNotFoundError:
            raise TinyTVMError(f"{path} is not a tinytvm library: it has no {METADATA} (make one "
                               "with tinytvm.micro.export_library or `tinytvm build`)") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise TinyTVMError(f"cannot read {meta_file}: {exc}") from None
        if meta.get("format") != FORMAT_VERSION:
            raise TinyTVMError(f"{meta_file} has format {meta.get('format')}; this tinytvm reads "
                               f"format {FORMAT_VERSION}: export the library again")
        state = tuple(StateTensor(t["name"], t["symbol"], tuple(t["shape"]), t["dtype"],
                                  t["offset"], t["nbytes"]) for t in meta["state"])
        return cls(path, meta["name"], meta["target"], tuple(meta["input_shape"]),
                   meta["num_classes"], meta["arena_bytes"], meta["trainable_bytes"],
                   meta["frozen_bytes"], meta["stack_bytes"], int(meta["model_id"], 16), state,
                   tuple(meta["files"]))

    def copy_to(self, out_dir: str | Path) -> Library:
        """The same library in another folder (only its own files are copied)."""
        out = Path(out_dir)
        for name in (*self.files, METADATA):
            _write_if_changed(out / name, (self.path / name).read_bytes())
        return Library.load(out)

    # --- saved state -----------------------------------------------------------------------

    def unpack_state(self, blob: bytes) -> dict[str, np.ndarray]:
        """A state from tt_save_state (or Client.save_state) as {weight name: array}."""
        self._check_state(blob)
        out = {}
        payload = blob[STATE_HEADER_BYTES:]
        for t in self.state:
            raw = payload[t.offset:t.offset + t.nbytes]
            out[t.name] = np.frombuffer(raw, dtype=np.dtype(t.dtype).newbyteorder("<")) \
                .astype(t.dtype).reshape(t.shape)
        return out

    def pack_state(self, values: dict[str, np.ndarray]) -> bytes:
        """The bytes tt_load_state accepts, from {weight name: array} (every state tensor)."""
        missing = [t.name for t in self.state if t.name not in values]
        if missing:
            raise ValueError(f"pack_state: no value for {', '.join(missing)}")
        header = STATE_MAGIC + struct.pack("<III", self.model_id, self.state_payload_bytes,
                                           len(self.state))
        parts = [header]
        for t in self.state:
            array = np.asarray(values[t.name], dtype=np.dtype(t.dtype).newbyteorder("<"))
            if array.shape != t.shape:
                raise ValueError(f"pack_state: {t.name} has shape {array.shape}, the model "
                                 f"has {t.shape}")
            parts.append(array.tobytes())
        body = b"".join(parts)
        return body + struct.pack("<I", zlib.crc32(body))

    def _check_state(self, blob: bytes) -> None:
        if blob[:4] != STATE_MAGIC:
            raise TinyTVMError("not a tinytvm state: it does not start with 'TTS1'")
        if len(blob) != self.state_bytes:
            raise TinyTVMError(f"state has {len(blob)} bytes; model '{self.name}' saves "
                               f"{self.state_bytes}")
        model_id, = struct.unpack("<I", blob[4:8])
        if model_id != self.model_id:
            raise TinyTVMError(f"state was saved from another model (id {model_id:08x}, "
                               f"'{self.name}' is {self.model_id:08x})")
        crc, = struct.unpack("<I", blob[-4:])
        if zlib.crc32(blob[:-4]) != crc:
            raise TinyTVMError("state is damaged: its CRC-32 does not match")


def export_library(artifact, out_dir: str | Path) -> Library:
    """Write `artifact` as a drop-in C library into `out_dir`; returns it as a Library."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = state_layout(artifact.weights.values())
    model_id = _model_id(state)
    stack = artifact.memory.stack_bytes or DEFAULT_STACK_BYTES
    payload = sum(t.nbytes for t in state)
    fields = {
        "name": artifact.name, "header": f"{artifact.name}.h", "target": artifact.target,
        "guard": artifact.name.upper(), "stack_bytes": stack,
        "arena_bytes": max(artifact.memory.arena_bytes, 16),
        "state_bytes": STATE_HEADER_BYTES + payload + STATE_CRC_BYTES,
        "state_payload_bytes": payload, "state_tensors": len(state), "model_id": f"{model_id:08x}",
    }
    c_sources = [f"{artifact.name}.c", "tt_state.c", "tt_crc32.c"]
    files = {name: text.encode() for name, text in artifact.sources.items()}
    files["tinytvm.h"] = _render("tinytvm.h.tmpl", fields)
    files["tt_state.c"] = _render("tt_state.c.tmpl", {**fields, **_state_table(state)})
    files["tinytvm.mk"] = _render("tinytvm.mk.tmpl", {
        **fields, "sources": " ".join(f"$(TT_DIR)/{s}" for s in c_sources)})
    files["CMakeLists.txt"] = _render("CMakeLists.txt.tmpl",
                                      {**fields, "sources": " ".join(c_sources)})
    for name in (*_RUNTIME_FILES, _TOOLCHAIN_FILE):
        files[name] = (TEMPLATES / name).read_bytes()
    for name, data in files.items():
        _write_if_changed(out / name, data)
    meta = {
        "format": FORMAT_VERSION, "name": artifact.name, "target": artifact.target,
        "input_shape": list(artifact.input_shape), "num_classes": artifact.num_classes,
        "arena_bytes": fields["arena_bytes"], "trainable_bytes": artifact.memory.trainable_bytes,
        "frozen_bytes": artifact.memory.frozen_bytes, "stack_bytes": stack,
        "model_id": fields["model_id"], "state_bytes": fields["state_bytes"],
        "state": [{**asdict(t), "shape": list(t.shape)} for t in state],
        "files": sorted(files),
    }
    _write_if_changed(out / METADATA, (json.dumps(meta, indent=1) + "\n").encode())
    return Library.load(out)


def state_layout(weights) -> tuple[StateTensor, ...]:
    """The trainable tensors (weights, then optimizer state, as the build lists them)."""
    out, offset = [], 0
    for t in weights:
        if not t.trainable:
            continue
        out.append(StateTensor(t.relax_name or t.name, t.name, tuple(int(s) for s in t.shape),
                               t.dtype, offset, t.nbytes))
        offset += t.nbytes
    return tuple(out)


def _model_id(state) -> int:
    text = ";".join(f"{t.name}:{t.dtype}:{'x'.join(map(str, t.shape))}" for t in state)
    return zlib.crc32(text.encode())


def _state_table(state) -> dict[str, str]:
    externs = "\n".join(f"extern {_C_TYPES[t.dtype]} {t.symbol}[];" for t in state)
    rows = ",\n".join(f"    {{(void *){t.symbol}, {t.nbytes}u}}" for t in state)
    return {"externs": externs or "/* (none: every weight is frozen) */",
            "table": rows or "    {0, 0u}", "table_rows": str(max(len(state), 1))}


def _render(template: str, fields: dict) -> bytes:
    return Template((TEMPLATES / template).read_text()).substitute(fields).encode()


def _write_if_changed(path: Path, data: bytes) -> None:
    """Leaves identical files alone, so make does not rebuild what did not change."""
    if path.is_file() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def copy_file(src: Path, dst: Path) -> None:
    _write_if_changed(dst, Path(src).read_bytes())

