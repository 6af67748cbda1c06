using Flora.Backends;
using Flora.Tensors;

namespace Flora.Nn;

/// <summary>
/// A keyed set of reusable activation buffers. Every module takes its buffers from a scope: by default
/// a private one; under activation checkpointing, all checkpointed blocks share one scope (keys are
/// relative to the block), because only one block's internals are alive at a time, in forward (which
/// keeps nothing) and in backward (which recomputes one block, then differentiates it).
/// </summary>
public sealed class ActivationScope : IDisposable
{
    private readonly IBackend _backend;
    private readonly Dictionary<string, TensorSlot> _slots = new();

    /// <summary>
    /// An empty scope whose buffers <paramref name="backend"/> allocates, tagged <see cref="MemoryTag.Activations"/>.
    /// </summary>
    public ActivationScope(IBackend backend) => _backend = backend;

    /// <summary>The slot for <paramref name="key"/>, created (empty) on first use.</summary>
    public TensorSlot Slot(string key, DType dtype = DType.Float32)
    {
        if (!_slots.TryGetValue(key, out var slot))
        {
            slot = new TensorSlot(_backend, MemoryTag.Activations, dtype);
            _slots.Add(key, slot);
        }
        return slot;
    }

    /// <summary>Frees every buffer of the scope; modules that took slots from it must not run again.</summary>
    public void Dispose()
    {
        foreach (var slot in _slots.Values) slot.Dispose();
        _slots.Clear();
    }
}
