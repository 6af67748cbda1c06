using Flora.Backends;
using Flora.Tensors;

namespace Flora.Tests.Tensors;

public class MemoryLedgerTests
{
    [Fact]
    public void Ledger_tracks_current_and_peak_bytes_per_tag_and_the_breakdown_at_the_overall_peak()
    {
        var ledger = new MemoryLedger();
        using var cpu = new Flora.Backends.Cpu.CpuBackend(ledger);
        var w = cpu.Allocate(new Shape(10, 10), MemoryTag.Parameters);          // 400 B
        var a = cpu.Allocate(new Shape(50), MemoryTag.Activations);              // 200 B
        Assert.Equal(400, ledger.Current(MemoryTag.Parameters));
        Assert.Equal(600, ledger.CurrentTotal);
        a.Dispose();
        var s = cpu.Allocate(new Shape(25), MemoryTag.Scratch);                  // 100 B
        Assert.Equal(0, ledger.Current(MemoryTag.Activations));
        Assert.Equal(200, ledger.Peak(MemoryTag.Activations));
        Assert.Equal(600, ledger.PeakTotal);
        var snap = ledger.Snapshot();
        Assert.Equal(200, snap[MemoryTag.Activations].BytesAtTotalPeak);
        Assert.Equal(0, snap[MemoryTag.Scratch].BytesAtTotalPeak);
        Assert.Equal(3, snap.Allocations);
        Assert.Equal(1, snap.Frees);
        w.Dispose(); s.Dispose();
        Assert.Equal(0, ledger.CurrentTotal);
        w.Dispose(); // disposing twice frees once
        Assert.Equal(0, ledger.CurrentTotal);
        ledger.ResetPeaks();
        Assert.Equal(0, ledger.PeakTotal);
    }

    [Fact]
    public void Views_share_storage_and_allocate_nothing()
    {
        var ledger = new MemoryLedger();
        using var cpu = new Flora.Backends.Cpu.CpuBackend(ledger);
        using var t = cpu.Allocate(new Shape(4, 6), MemoryTag.Activations);
        var v = t.View(new Shape(2, 12));
        var rows = t.RowSlice(1, 2);
        cpu.Fill(rows, 3f);
        float[] all = TestUtil.ToArray(t);
        Assert.Equal(12, all.Count(x => x == 3f));
        Assert.Equal(3f, all[6]);
        Assert.Equal(1, ledger.Allocations);
        v.Dispose(); // a view frees nothing
        Assert.Equal(96, ledger.CurrentTotal);
        Assert.Throws<ArgumentException>(() => t.View(new Shape(5, 5)));
    }

    [Fact]
    public void Tensor_slot_grows_to_the_largest_request_and_then_stops_allocating()
    {
        var ledger = new MemoryLedger();
        using var cpu = new Flora.Backends.Cpu.CpuBackend(ledger);
        using var slot = new TensorSlot(cpu, MemoryTag.Activations);
        slot.Get(new Shape(128, 10));
        slot.Get(new Shape(1000, 10));
        long after = ledger.Allocations;
        for (int i = 0; i < 5; i++) { slot.Get(new Shape(128, 10)); slot.Get(new Shape(1000, 10)); }
        Assert.Equal(after, ledger.Allocations);
        Assert.Equal(10_000, slot.Capacity);
        Assert.Equal(40_000, ledger.Current(MemoryTag.Activations));
    }

    [Fact]
    public void Shape_rejects_negative_dimensions_and_compares_by_value()
    {
        Assert.Throws<ArgumentException>(() => new Shape(3, -1));
        Assert.Equal(new Shape(2, 3), new Shape(2, 3));
        Assert.NotEqual(new Shape(2, 3), new Shape(3, 2));
        Assert.Equal(6, new Shape(2, 3).Count);
        Assert.Equal(3, new Shape(2, 3)[-1]);
        Assert.Equal("(2, 3)", new Shape(2, 3).ToString());
    }
}
