"""C emitter: Programs + planned offsets + kernel source → `model.h` / `model.c`.

The C text comes from the templates in `runtime_c/templates/`; this module only fills them.
Numbers are written as C99 hex floats, so the weights in the C are bit-exact and the output is
byte-identical for identical inputs.
"""

from __future__ import annotations

from string import Template

import numpy as np

from .aot import C_TYPES, Program, Tensor
from .lower import FAST_KERNELS_HEADERS, kernel_symbol
from .toolchain import RUNTIME_C

TEMPLATES = RUNTIME_C / "templates"


def _literal(value, dtype: str) -> str:
    if dtype == "float32":
        return float(np.float32(value)).hex() + "f"
    if dtype == "bool":
        return "1" if value else "0"
    return str(int(value))


def _array(t: Tensor, qualifier: str) -> str:
    flat = np.asarray(t.value).reshape(-1)
    body = ",".join(_literal(v, t.dtype) for v in flat) if flat.size else "0"
    rows = []
    items = body.split(",")
    for i in range(0, len(items), 8):
        rows.append("  " + ", ".join(items[i:i + 8]))
    note = f"/* {t.relax_name or t.name} {list(t.shape)} */\n" if t.relax_name else ""
    return (f"{note}{qualifier}{C_TYPES[t.dtype]} {t.name}[{max(flat.size, 1)}] "
            f"__attribute__((aligned(16))) = {{\n" + ",\n".join(rows) + "\n};\n")


def weight_definitions(weights) -> str:
    parts = []
    for t in weights:
        parts.append(_array(t, "" if t.trainable else "const "))
    return "\n".join(parts)


def constant_definitions(constants) -> str:
    return "\n".join(_array(t, "static const ") for t in constants)


def tensor_ref(t: Tensor, offsets: dict[str, int]) -> str:
    """The C expression for a tensor's data pointer."""
    home = t.home
    ctype = C_TYPES[home.dtype]
    if home.storage == "arena":
        return f"(({ctype} *)(tt_arena + {offsets[home.name]}))"
    if home.storage in ("weight", "const"):
        return f"(({ctype} *){home.name})"
    if home.storage == "input":
        return f"(({ctype} *)input)"
    if home.storage == "label":
        return "label_buf"
    if home.storage == "logits":
        return "logits"
    raise ValueError(f"no storage for tensor {home.name}")


def function_body(program: Program, offsets: dict[str, int], returns_loss: bool) -> str:
    lines = []
    loss = program.outputs[0] if returns_loss else None
    for call in program.calls:
        args = ", ".join(tensor_ref(t, offsets) for t in [*call.inputs, call.output,
                                                           *call.scratch])
        lines.append(f"  {kernel_symbol(call.kernel)}({args});")
        if loss is not None and call.output is loss:
            # a NaN/inf loss rejects the step before any weight or state is written
            lines.append(f"  if (!isfinite({tensor_ref(loss, offsets)}[0])) "
                         f"return {tensor_ref(loss, offsets)}[0];")
    for new, weight in program.updates:
        if new.home is not weight:  # could not be written in place: copy once at the end
            lines.append(f"  memcpy({weight.name}, {tensor_ref(new, offsets)}, {new.nbytes});")
    if returns_loss:
        lines.append(f"  return {tensor_ref(program.outputs[0], offsets)}[0];")
    return "\n".join(lines)


def render(name: str, fields: dict, programs: dict, offsets: dict) -> dict[str, str]:
    """{"<name>.h": ..., "<name>.c": ...} from the templates, the programs and their offsets."""
    header = f"{name}.h"
    train = "train_step" in programs
    fields = dict(fields, name=name, header=header, guard=name.upper())
    fields["train_decl"] = Template(_template("train_decl.h.tmpl")).substitute(fields) if train else ""
    fields["infer_body"] = function_body(programs["infer"], offsets["infer"], False)
    fields["train_function"] = Template(_template("train_step.c.tmpl")).substitute(
        fields, train_body=function_body(programs["train_step"], offsets["train_step"], True),
    ) if train else ""
    sources = {header: Template(_template("model.h.tmpl")).substitute(fields),
               f"{name}.c": Template(_template("model.c.tmpl")).substitute(fields)}
    texts = [fields["kernels"]]  # the micro-kernels included, directly or by one: next to model.c
    while texts:
        text = texts.pop()
        for kernels_header in FAST_KERNELS_HEADERS:
            if kernels_header not in sources and f'#include "{kernels_header}"' in text:
                sources[kernels_header] = (RUNTIME_C / "kernels" / kernels_header).read_text()
                texts.append(sources[kernels_header])
    return sources


def _template(file: str) -> str:
    return (TEMPLATES / file).read_text()
