using System.Runtime.InteropServices;

namespace Flora.Tensors;

/// <summary>
/// A block of owned memory on some device, tagged in a <see cref="MemoryLedger"/> for its whole life.
/// Backends create storages; tensors view them.
/// </summary>
public abstract class Storage : IDisposable
{
    private int _disposed;

    protected Storage(MemoryLedger ledger, MemoryTag tag, long bytes)
    {
        Ledger = ledger;
        Tag = tag;
        Bytes = bytes;
    }

    public MemoryLedger Ledger { get; }
    public MemoryTag Tag { get; }
    public long Bytes { get; }

    /// <summary>Start of the block: a host address or a device address.</summary>
    public IntPtr Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed != 0, this);
            return RawPointer;
        }
    }

    protected abstract IntPtr RawPointer { get; }

    /// <summary>True when the memory is host memory that C# code may read directly.</summary>
    public abstract bool IsHost { get; }

    public bool IsDisposed => _disposed != 0;

    protected abstract void Release();

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Release();
        Ledger.OnFreed(Tag, Bytes);
        GC.SuppressFinalize(this);
    }

    ~Storage()
    {
        // A leaked storage still gives its memory back; the ledger is not touched from the finalizer thread.
        if (Interlocked.Exchange(ref _disposed, 1) == 0) Release();
    }
}

/// <summary>Host memory from <see cref="NativeMemory.AlignedAlloc(nuint, nuint)"/>, 64-byte aligned, zero-filled.</summary>
public sealed unsafe class HostStorage : Storage
{
    public const int Alignment = 64;
    private readonly void* _pointer;

    public HostStorage(MemoryLedger ledger, MemoryTag tag, long bytes) : base(ledger, tag, bytes)
    {
        nuint size = (nuint)Math.Max(bytes, 1);
        try
        {
            _pointer = NativeMemory.AlignedAlloc(size, Alignment);
        }
        catch (OutOfMemoryException)
        {
            throw new FloraException($"out of host memory: asked for {bytes:N0} bytes for {tag}; held now: {ledger.CurrentTotal:N0} bytes");
        }
        NativeMemory.Clear(_pointer, size);
        ledger.OnAllocated(tag, bytes);
    }

    protected override IntPtr RawPointer => (IntPtr)_pointer;
    public override bool IsHost => true;
    protected override void Release() => NativeMemory.AlignedFree(_pointer);
}
