"""Flash a firmware ELF with pyOCD (CMSIS-DAP / ST-LINK probes). Every failure, including "no
probe attached", ends in a ToolchainError that says what to do; pyOCD's own exceptions and
tracebacks never reach the user."""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import ToolchainError

NO_PROBE = (
    "no debug probe found, so nothing was flashed. Connect the STM32F746G-DISCO's ST-LINK "
    "(its USB mini-B connector marked USB ST-LINK, CN14) to this computer with a data cable, "
    "and on Linux give your user access to it (pyOCD's udev rules, or run as root). "
    "`pyocd list` must show the probe; then flash again."
)


def flash_elf(elf: str | Path, target: str, *, probe: str | None = None,
              pack: str | Path | None = None) -> None:
    """Program `elf` into the chip behind the (only, or `probe`-named) debug probe, then reset it.

    target: pyOCD's target name ("stm32f746xg"). pack: a CMSIS pack file for targets pyOCD does
    not build in (the STM32F7 family pack: Keil.STM32F7xx_DFP.*.pack).
    """
    elf = Path(elf)
    if not elf.is_file():
        raise ToolchainError(f"cannot flash {elf}: the file does not exist "
                             "(build the project first)")
    helpers = _pyocd()
    quiet = _quiet_pyocd()
    try:
        probes = helpers.ConnectHelper.get_all_connected_probes(blocking=False,
                                                                print_wait_message=False)
        if probe is not None:
            probes = [p for p in probes if p.unique_id.startswith(probe)]
        if not probes:
            raise ToolchainError(NO_PROBE if probe is None else f"no debug probe with id '{probe}'"
                                 " is connected; `pyocd list` shows the connected ones")
        if len(probes) > 1 and probe is None:
            ids = ", ".join(p.unique_id for p in probes)
            raise ToolchainError(f"{len(probes)} debug probes are connected ({ids}); choose one "
                                 "with probe=<id> (CLI: --probe)")
        _check_target(target, pack)
        _program(helpers, probes[0].unique_id, target, elf, pack)
    except ToolchainError:
        raise
    except Exception as exc:  # noqa: BLE001 -- pyOCD raises many kinds; the message is what counts
        raise ToolchainError(f"flashing {elf.name} with pyOCD failed: {exc}") from None
    finally:
        quiet.restore()


def _program(helpers, unique_id: str, target: str, elf: Path, pack) -> None:
    from pyocd.flash.file_programmer import FileProgrammer

    options = {"pack": str(pack)} if pack is not None else {}
    session = helpers.ConnectHelper.session_with_chosen_probe(
        unique_id=unique_id, return_first=True, blocking=False, target_override=target,
        options=options)
    if session is None:
        raise ToolchainError(NO_PROBE)
    with session:
        FileProgrammer(session).program(str(elf), file_format="elf")
        session.target.reset()


def _check_target(target: str, pack) -> None:
    """pyOCD knows a target if it is built in, comes from an installed pack, or from `pack`."""
    if pack is not None:
        return
    from pyocd.target import TARGET
    from pyocd.target.pack.pack_target import ManagedPacks

    if target in TARGET:
        return
    installed = {t.part_number.lower() for t in ManagedPacks.get_installed_targets()}
    if target.lower() not in installed:
        raise ToolchainError(
            f"pyOCD has no support for '{target}' installed. Install the STM32F7 CMSIS pack once "
            f"(needs internet): pyocd pack install {target}; or download "
            "Keil.STM32F7xx_DFP.pack and pass it with pack=... (CLI: --pack).")


def _pyocd():
    try:
        from pyocd.core import helpers
    except ImportError:
        raise ToolchainError("flashing needs pyOCD: pip install pyocd") from None
    return helpers


class _quiet_pyocd:
    """pyOCD logs warnings (e.g. about USB back ends) that read like failures; keep them for
    errors only while it runs."""

    def __init__(self):
        self.logger = logging.getLogger("pyocd")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def restore(self):
        self.logger.setLevel(self.level)
