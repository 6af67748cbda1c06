using System.Runtime.InteropServices;

namespace Flora.Tensors;

/// <summary>
/// A block of owned memory on some device, tagged in a <see cref="MemoryLedger"/> for its whole life.
/// Backends create storages; tensors view them.
/// </summary>
public abstract class Storage : IDisposable
{
    private int _disposed;

    /// <summary>
    /// Records the block's owner and size; the derived class allocates the memory and reports it to
    /// <paramref name="ledger"/> under <paramref name="tag"/>. <see cref="Dispose"/> reports the free.
    /// </summary>
    protected Storage(MemoryLedger ledger, MemoryTag tag, long bytes)
    {
        Ledger = ledger;
        Tag = tag;
        Bytes = bytes;
    }

    /// <summary>The ledger the block was counted in when allocated and is subtracted from when disposed.</summary>
    public MemoryLedger Ledger { get; }

    /// <summary>What the block is for, the ledger row its bytes are counted under.</summary>
    public MemoryTag Tag { get; }

    /// <summary>Size of the block in bytes, fixed for its life.</summary>
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

    /// <summary>Start of the block without the disposed check; <see cref="Pointer"/> reads it.</summary>
    protected abstract IntPtr RawPointer { get; }

    /// <summary>True when the memory is host memory that C# code may read directly.</summary>
    public abstract bool IsHost { get; }

    /// <summary>True once <see cref="Dispose"/> (or the finalizer) has released the memory.</summary>
    public bool IsDisposed => _disposed != 0;

    /// <summary>Copies <paramref name="destination"/>.Length bytes, starting <paramref name="byteOffset"/> bytes into the block, to host memory.</summary>
    public void CopyToHost(long byteOffset, Span<byte> destination)
    {
        CheckRange(byteOffset, destination.Length);
        if (destination.Length > 0) Read(byteOffset, destination);
    }

    /// <summary>Copies <paramref name="source"/> into the block, starting <paramref name="byteOffset"/> bytes in.</summary>
    public void CopyFromHost(ReadOnlySpan<byte> source, long byteOffset)
    {
        CheckRange(byteOffset, source.Length);
        if (source.Length > 0) Write(source, byteOffset);
    }

    /// <summary>Reads bytes of the block (range already checked).</summary>
    protected abstract void Read(long byteOffset, Span<byte> destination);

    /// <summary>Writes bytes of the block (range already checked).</summary>
    protected abstract void Write(ReadOnlySpan<byte> source, long byteOffset);

    private void CheckRange(long byteOffset, int length)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (byteOffset < 0 || byteOffset + length > Bytes)
            throw new ArgumentOutOfRangeException(nameof(byteOffset), $"bytes [{byteOffset}, {byteOffset + length}) are outside a storage of {Bytes} bytes");
    }

    /// <summary>Frees the memory; called exactly once, from <see cref="Dispose"/> or from the finalizer.</summary>
    protected abstract void Release();

    /// <summary>Frees the memory and subtracts <see cref="Bytes"/> from the ledger; later calls do nothing.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Release();
        Ledger.OnFreed(Tag, Bytes);
        GC.SuppressFinalize(this);
    }

    /// <summary>Frees the memory of a storage that was never disposed, without touching the ledger.</summary>
    ~Storage()
    {
        // A leaked storage still gives its memory back; the ledger is not touched from the finalizer thread.
        if (Interlocked.Exchange(ref _disposed, 1) == 0) Release();
    }
}

/// <summary>Host memory from <see cref="NativeMemory.AlignedAlloc(nuint, nuint)"/>, 64-byte aligned, zero-filled.</summary>
internal sealed unsafe class HostStorage : Storage
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
    protected override void Read(long byteOffset, Span<byte> destination) =>
        new ReadOnlySpan<byte>((byte*)_pointer + byteOffset, destination.Length).CopyTo(destination);
    protected override void Write(ReadOnlySpan<byte> source, long byteOffset) =>
        source.CopyTo(new Span<byte>((byte*)_pointer + byteOffset, source.Length));
    protected override void Release() => NativeMemory.AlignedFree(_pointer);
}
