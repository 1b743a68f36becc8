"""The same generated C on the host and on a Cortex-M7: QEMU mps2-an500 and the STM32F746 link."""

import numpy as np
import pytest
from elftools.elf.elffile import ELFFile

import tinytvm
from tinytvm.harness import Dataset, run_training
from tinytvm.toolchain import RUNTIME_C, compile_cortex_m, elf_sizes

from conftest import MODELS, cached_build


def _data(seed, n=6):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 64)).astype(np.float32)
    y = rng.integers(0, 10, n)
    return Dataset.quantize(x, y, -3.0, 3.0)


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_qemu_losses_match_host(model, momentum):
    art = cached_build(model, "mps2-an500", 0.05, momentum)
    train, evaluation = _data(1), _data(2, n=4)
    host = run_training(art, train, evaluation, 8, where="host")
    qemu = run_training(art, train, evaluation, 8, where="qemu")
    assert len(qemu.losses) == 8
    np.testing.assert_allclose(qemu.losses, host.losses, rtol=1e-5, atol=0)
    assert (qemu.correct_before, qemu.correct_after) == (host.correct_before, host.correct_after)
    assert qemu.instructions and qemu.instructions > 0
    assert 0 < qemu.stack_peak < art.memory.stack_bytes


def test_qemu_matches_host_session():
    """The harness on QEMU and the ctypes host session agree step by step."""
    art = cached_build("mbv2_tiny", "mps2-an500")
    train = _data(3)
    qemu = run_training(art, train, _data(4, n=2), 5, where="qemu")
    sess = art.host_session()
    xs = train.floats()
    host = [sess.train_step(xs[i % len(xs)], int(train.labels[i % len(xs)])) for i in range(5)]
    np.testing.assert_allclose(qemu.losses, np.array(host, np.float32), rtol=1e-5)


def test_training_reduces_loss_on_device():
    art = cached_build("resnet_tiny", "mps2-an500", 0.05)
    train = _data(5, n=2)
    run = run_training(art, train, _data(6, n=2), 30, where="qemu")
    assert run.losses[-2:].mean() < 0.5 * run.losses[:2].mean()


def test_stm32f746_links_with_real_memory_map(tmp_path):
    art = cached_build("mbv2_tiny", "stm32f746")
    src = art.save(tmp_path)
    (src / "dataset.h").write_text(
        __import__("tinytvm.harness", fromlist=["dataset_header"]).dataset_header(_data(7), _data(8), 3))
    elf = compile_cortex_m([src / "model.c", RUNTIME_C / "harness" / "train_main.c"], [src],
                           tmp_path / "fw.elf", "stm32f746",
                           extra_cflags=['-DTT_MODEL_HEADER="model.h"'])
    with open(elf, "rb") as f:
        elffile = ELFFile(f)
        vectors = elffile.get_section_by_name(".isr_vector")
        text = elffile.get_section_by_name(".text")
        assert vectors["sh_addr"] == 0x08000000
        assert 0x08000000 <= text["sh_addr"] < 0x08000000 + 1024 * 1024
        bss = elffile.get_section_by_name(".bss")
        assert 0x20000000 <= bss["sh_addr"] < 0x20000000 + 320 * 1024
    sizes = elf_sizes(elf)
    # trainable weights are .data (SRAM), the arena .bss, frozen weights flash
    assert sizes["data"] >= art.memory.trainable_bytes
    assert sizes["bss"] >= art.memory.arena_bytes


def test_frozen_weights_are_const_in_flash(tmp_path):
    art = cached_build("mbv2_tiny", "stm32f746", 0.05, 0.0, ("fc14.weight", "fc14.bias"))
    c = art.sources["model.c"]
    assert "\nconst float tt_w_conv1_weight[" in c
    assert "\nfloat tt_w_fc14_weight[" in c
    assert art.memory.frozen_bytes > art.memory.trainable_bytes


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_nonfinite_loss_rejects_the_step(momentum):
    from tinytvm.models import OnnxBuilder

    b = OnnxBuilder("unbounded", [1, 1, 8, 8])
    x = b.flatten(b.global_avg_pool(b.relu(b.conv("input", 1, 4, 3))))
    art = tinytvm.build(b.finish(b.gemm(x, 4, 10), [1, 10]),
                        train=tinytvm.TrainConfig(lr=0.05, momentum=momentum))
    sess = art.host_session()
    before = sess.params()
    bad = np.full((1, 1, 8, 8), 3e38, np.float32)  # a glitched sensor: overflows to inf
    loss = sess.train_step(bad, 1)
    assert not np.isfinite(loss)
    after = sess.params()
    for name in before:
        assert before[name].tobytes() == after[name].tobytes(), f"{name} changed on a rejected step"
    good = np.random.default_rng(0).normal(size=(1, 1, 8, 8)).astype(np.float32)
    assert np.isfinite(sess.train_step(good, 1))  # and training goes on
    assert any(not np.array_equal(before[n], sess.params()[n]) for n in before)
