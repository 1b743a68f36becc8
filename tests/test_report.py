from conftest import cached_build


def test_memory_report_text_and_timeline_plot(tmp_path):
    art = cached_build("resnet_tiny")
    text = str(art.memory)
    assert "train_step" in text and "lower bound" in text and "trainable state" in text
    rows = art.memory.tensor_table()
    assert rows and all(size > 0 and end > start for _, _, _, size, start, end in rows)
    png = art.memory.plot(tmp_path / "memory.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_report_shows_relax_static_plan_on_the_same_kernels():
    """The report carries what TVM Relax's StaticPlanBlockMemory reserves for each function on
    the same legalized kernels: tinytvm's planned arena is below it."""
    import tinytvm
    from tinytvm.models import mbv2_tiny

    art = tinytvm.build(mbv2_tiny(), train=tinytvm.TrainConfig(lr=0.05), verify=False)
    for f in art.memory.functions:
        assert f.relax_bytes is not None and f.peak < f.relax_bytes, f
    assert "Relax StaticPlan" in str(art.memory)
    again = type(art.memory).from_dict(art.memory.to_dict())
    assert [f.relax_bytes for f in again.functions] == [f.relax_bytes for f in art.memory.functions]
