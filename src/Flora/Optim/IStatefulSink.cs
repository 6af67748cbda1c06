using Flora.Checkpoints;

namespace Flora.Optim;

/// <summary>
/// A sink whose state outlives a backward pass (accumulators mid-cycle, resampling cycles), so that a
/// checkpoint can hold it: tensors and metadata under a prefix of a safetensors file.
/// </summary>
public interface IStatefulSink
{
    /// <summary>
    /// Adds the state to <paramref name="writer"/>: tensors and metadata keys whose names start with
    /// <paramref name="prefix"/>.
    /// </summary>
    void SaveState(SafeTensorsWriter writer, string prefix);

    /// <summary>Restores what <see cref="SaveState"/> wrote; throws <see cref="InvalidDataException"/> when it does not fit.</summary>
    void LoadState(SafeTensorsFile file, string prefix);

    /// <summary>Drops the gradients accumulated in the current cycle, so that the next one starts afresh.</summary>
    void Discard();
}

/// <summary>
/// A sink that can train data parallel: it hands each gradient to a <see cref="IGradientReducer"/> (averaging
/// across ranks) between the moment the gradient is final and the update that uses it.
/// </summary>
public interface IDataParallelSink
{
    /// <summary>The reducer, or null in a single process.</summary>
    IGradientReducer? Reducer { get; set; }
}
