"""tinytvm.micro: from a build to a device that trains.

- export_library(artifact, dir): a drop-in C library (header, sources, Makefile fragment,
  CMakeLists.txt) for firmware you already have;
- generate_project(artifact, board, dir): a folder that builds with `make` alone and runs the
  protocol firmware on "stm32f746-disco", "mps2-an500" (QEMU) or "host";
- Client: the host side of the UART protocol (docs/protocol.md), over any pyserial URL.
"""

from .client import Client
from .device import Device
from .library import Library, StateTensor, export_library
from .project import MICRO_BOARDS, MicroBoard, Project, generate_project
from .protocol import (
    CycleKind,
    DeviceError,
    DeviceInfo,
    DeviceStats,
    InferResult,
    ProtocolError,
    TrainResult,
)

__all__ = [
    "MICRO_BOARDS", "Client", "CycleKind", "Device", "DeviceError", "DeviceInfo", "DeviceStats",
    "InferResult", "Library", "MicroBoard", "Project", "ProtocolError", "StateTensor",
    "TrainResult", "export_library", "generate_project",
]
