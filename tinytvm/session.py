"""Host session: the generated C compiled with gcc and called through ctypes.

It runs exactly the C that goes to the device, so it is the fast, bit-exact stand-in for the
board in tests and in the sparse-update search.
"""

from __future__ import annotations

import ctypes
import tempfile
from pathlib import Path

import numpy as np

from .toolchain import compile_host_library

_CTYPES = {"float32": ctypes.c_float, "int32": ctypes.c_int32, "int8": ctypes.c_int8,
           "uint8": ctypes.c_uint8, "int64": ctypes.c_int64}


class HostSession:
    def __init__(self, artifact):
        self.artifact = artifact
        self._dir = tempfile.TemporaryDirectory(prefix="tinytvm-host-")
        src = artifact.save(self._dir.name)
        lib = compile_host_library([src / f"{artifact.name}.c"], [src],
                                   Path(self._dir.name) / f"lib{artifact.name}.so")
        self.lib = ctypes.CDLL(str(lib))
        if artifact.train is not None:
            self.lib.tt_train_step.restype = ctypes.c_float
            self.lib.tt_train_step.argtypes = [ctypes.c_void_p, ctypes.c_int32]
        self.lib.tt_infer.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        main = artifact.ir["main"]
        self.input_dtype = str(main.params[0].ty.dtype)
        self.output_dtype = str(main.ret_ty.dtype)

    def _input(self, x) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=self.input_dtype)
        expected = int(np.prod(self.artifact.input_shape))
        if x.size != expected:
            raise ValueError(f"input has {x.size} values, the model takes "
                             f"{self.artifact.input_shape} = {expected}")
        return x

    def train_step(self, x, label: int) -> float:
        if self.artifact.train is None:
            raise RuntimeError("this artifact was built with inference_only=True: no tt_train_step")
        x = self._input(x)
        return float(self.lib.tt_train_step(x.ctypes.data, int(label)))

    def infer(self, x) -> np.ndarray:
        x = self._input(x)
        shape = [int(d) for d in self.artifact.ir["main"].ret_ty.shape]
        out = np.zeros(int(np.prod(shape)), self.output_dtype)
        self.lib.tt_infer(x.ctypes.data, out.ctypes.data)
        return out if len(shape) == 2 and shape[0] == 1 else out.reshape(shape)

    def trained_module(self):
        """The inference model with the weights as trained so far (a Relax IRModule to build)."""
        art = self.artifact
        return module_with_weights(art.model_ir or art.ir, self.params())

    def params(self) -> dict[str, np.ndarray]:
        """Current value of every weight (trainable ones as updated by the steps so far)."""
        out = {}
        for name, t in self.artifact.weights.items():
            n = int(np.prod(t.shape))
            array = (_CTYPES[t.dtype] * n).in_dll(self.lib, t.name)
            out[name] = np.ctypeslib.as_array(array).reshape(t.shape).copy()
        return out


def module_with_weights(mod, weights: dict[str, np.ndarray]):
    """`mod`'s inference function `main` alone, with its weights replaced by `weights`."""
    import tvm

    from .ir import FunctionView

    view = FunctionView.of(mod["main"])
    for w in view.weights:
        if w.name in weights:
            view.values[w.name] = np.asarray(weights[w.name], np.float32)
    return tvm.IRModule({"main": view.to_function()})
