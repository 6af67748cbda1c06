using Flora.Tensors;

namespace Flora.Backends.Cuda;

/// <summary>
/// A caching device allocator: freed blocks go back to per-size free lists and are reused, so the
/// steady-state training loop never calls cuMemAlloc. Sizes round up to 512 bytes below 1 MiB and to
/// 2 MiB above. When the device is full, cached free blocks are released and the allocation retried
/// once; then an <see cref="OutOfDeviceMemoryException"/> says what was asked and what is held.
/// </summary>
internal sealed unsafe class CudaAllocator : IDisposable
{
    private readonly Dictionary<long, Stack<ulong>> _free = new();
    private readonly CudaDevice _device;
    private readonly MemoryLedger _ledger;
    private readonly object _gate = new();

    public CudaAllocator(CudaDevice device, MemoryLedger ledger)
    {
        _device = device;
        _ledger = ledger;
    }

    /// <summary>Bytes obtained from the driver, in use or cached.</summary>
    public long Reserved { get; private set; }

    /// <summary>Bytes cached in the free lists.</summary>
    public long Cached { get; private set; }

    /// <summary>cuMemAlloc calls so far (constant in a steady-state loop).</summary>
    public long DriverAllocations { get; private set; }

    public static long RoundUp(long bytes) => bytes < (1 << 20) ? Math.Max(512, (bytes + 511) / 512 * 512) : (bytes + (2 << 20) - 1) / (2 << 20) * (2 << 20);

    public ulong Allocate(long bytes, MemoryTag tag)
    {
        lock (_gate) return AllocateLocked(bytes, tag);
    }

    private ulong AllocateLocked(long bytes, MemoryTag tag)
    {
        long size = RoundUp(bytes);
        if (_free.TryGetValue(size, out var stack) && stack.Count > 0)
        {
            Cached -= size;
            return stack.Pop();
        }
        ulong pointer;
        int result = Driver.Functions.MemAlloc(&pointer, (nuint)size);
        if (result == Driver.OutOfMemory)
        {
            ReleaseCache();
            result = Driver.Functions.MemAlloc(&pointer, (nuint)size);
            if (result == Driver.OutOfMemory) throw OutOfMemory(bytes, tag);
        }
        Driver.Check(result, $"cuMemAlloc({size} bytes for {tag})");
        Reserved += size;
        DriverAllocations++;
        return pointer;
    }

    public void Free(ulong pointer, long bytes)
    {
        lock (_gate) FreeLocked(pointer, bytes);
    }

    private void FreeLocked(ulong pointer, long bytes)
    {
        long size = RoundUp(bytes);
        if (!_free.TryGetValue(size, out var stack)) _free[size] = stack = new Stack<ulong>();
        stack.Push(pointer);
        Cached += size;
    }

    /// <summary>Gives every cached block back to the driver.</summary>
    public void ReleaseCache()
    {
        foreach (var (size, stack) in _free)
            while (stack.Count > 0)
            {
                Driver.Functions.MemFree(stack.Pop());
                Reserved -= size;
                Cached -= size;
            }
    }

    private OutOfDeviceMemoryException OutOfMemory(long bytes, MemoryTag tag)
    {
        var snapshot = _ledger.Snapshot();
        var (free, total) = _device.MemoryInfo();
        string held = string.Join(", ", snapshot.Tags.Where(t => t.CurrentBytes > 0).Select(t => $"{t.Tag} {t.CurrentBytes / 1048576.0:F0} MiB"));
        return new OutOfDeviceMemoryException(
            $"out of GPU memory: asked for {bytes / 1048576.0:F1} MiB of {tag}; held: {held}; the device has {free / 1048576.0:F0} of {total / 1048576.0:F0} MiB free. " +
            "Try a smaller --batch or --seq-len, a lower --rank, --lomo (no gradient buffers) or --activation-checkpointing");
    }

    public void Dispose()
    {
        ReleaseCache();
    }
}

/// <summary>The GPU ran out of memory; the message lists what is held by category and what to try.</summary>
public sealed class OutOfDeviceMemoryException(string message) : FloraException(message);

/// <summary>Device memory of one tensor, from the caching allocator, tagged in the ledger.</summary>
internal sealed class DeviceStorage : Storage
{
    private readonly CudaAllocator _allocator;
    private readonly ulong _pointer;

    public DeviceStorage(CudaAllocator allocator, MemoryLedger ledger, MemoryTag tag, long bytes) : base(ledger, tag, bytes)
    {
        _allocator = allocator;
        _pointer = allocator.Allocate(Math.Max(bytes, 4), tag);
        ledger.OnAllocated(tag, bytes);
    }

    protected override IntPtr RawPointer => (IntPtr)(long)_pointer;
    public override bool IsHost => false;
    protected override void Release() => _allocator.Free(_pointer, Math.Max(Bytes, 4));

    protected override unsafe void Read(long byteOffset, Span<byte> destination)
    {
        fixed (byte* d = destination)
            Driver.Check(Driver.Functions.MemcpyDtoH(d, _pointer + (ulong)byteOffset, (nuint)destination.Length), $"cuMemcpyDtoH({destination.Length} bytes)");
    }

    protected override unsafe void Write(ReadOnlySpan<byte> source, long byteOffset)
    {
        fixed (byte* s = source)
            Driver.Check(Driver.Functions.MemcpyHtoD(_pointer + (ulong)byteOffset, s, (nuint)source.Length), $"cuMemcpyHtoD({source.Length} bytes)");
    }
}
