using System.Text.Json;
using Flora.Checkpoints;

namespace Flora.Optim;

/// <summary>
/// Saves and loads the whole state of an optimizer in the safetensors format shared with training
/// checkpoints: tensors "{prefix}{parameter}/{state}" (e.g. "optimizer/h.0.attn.c_attn.weight/exp_avg",
/// FLORA's compressed momentum among them) and metadata "{prefix}type", "{prefix}configuration" and
/// "{prefix}steps" (a JSON map of parameter to update count). Loading refuses, with
/// <see cref="InvalidDataException"/>, another optimizer type, another configuration (rank, momentum
/// kind, ...), another set of parameters or a tensor of another shape. FLORA's projections are not saved:
/// they are regenerated from the seeds and steps, so a resumed run continues bit for bit. GaLore's are (they
/// come from a gradient's SVD), with the step each was computed at: states that keep such whole numbers
/// implement <see cref="IStateScalars"/>, and they are saved as metadata "{prefix}scalars" (a JSON map of
/// parameter to name to value).
/// </summary>
internal static class OptimizerCheckpoint
{
    public const string Kind = "flora.optimizer";
    public const string DefaultPrefix = "optimizer/";

    public static void AddTo(Optimizer optimizer, SafeTensorsWriter writer, string prefix = DefaultPrefix)
    {
        var states = optimizer.States;
        writer.AddMetadata(prefix + "type", optimizer.StateName);
        writer.AddMetadata(prefix + "configuration", optimizer.Configuration);
        writer.AddMetadata(prefix + "steps", JsonSerializer.Serialize(states.ToDictionary(s => s.Parameter.Name, s => s.Step)));
        if (states.Any(s => s is IStateScalars))
            writer.AddMetadata(prefix + "scalars", JsonSerializer.Serialize(states.OfType<IStateScalars>()
                .ToDictionary(s => ((ParameterState)s).Parameter.Name, s => s.SaveScalars())));
        foreach (var state in states)
            foreach (var t in state.Tensors)
                writer.Add($"{prefix}{state.Parameter.Name}/{t.Name}", t.Tensor);
    }

    public static void LoadFrom(Optimizer optimizer, SafeTensorsFile file, string prefix = DefaultPrefix)
    {
        string type = Required(file, prefix + "type");
        if (type != optimizer.StateName)
            throw new InvalidDataException($"{file.Path}: the checkpoint holds {type} state; this optimizer is {optimizer.StateName}");
        string configuration = Required(file, prefix + "configuration");
        if (configuration != optimizer.Configuration)
            throw new InvalidDataException($"{file.Path}: the checkpoint's {type} was configured '{configuration}'; this one is '{optimizer.Configuration}'");
        Dictionary<string, long> steps;
        try { steps = JsonSerializer.Deserialize<Dictionary<string, long>>(Required(file, prefix + "steps")) ?? []; }
        catch (JsonException e) { throw new InvalidDataException($"{file.Path}: corrupt optimizer steps: {e.Message}"); }
        var states = optimizer.States;
        if (steps.Count != states.Count)
            throw new InvalidDataException($"{file.Path}: the checkpoint has optimizer state for {steps.Count} parameters; this optimizer has {states.Count}");
        Dictionary<string, Dictionary<string, long>>? scalars = null;
        if (states.Any(s => s is IStateScalars))
        {
            try { scalars = JsonSerializer.Deserialize<Dictionary<string, Dictionary<string, long>>>(Required(file, prefix + "scalars")) ?? []; }
            catch (JsonException e) { throw new InvalidDataException($"{file.Path}: corrupt optimizer scalars: {e.Message}"); }
        }
        int expectedTensors = 0;
        foreach (var state in states)
        {
            if (!steps.TryGetValue(state.Parameter.Name, out long step))
                throw new InvalidDataException($"{file.Path}: the checkpoint has no optimizer state for '{state.Parameter.Name}'");
            state.Step = step;
            if (state is IStateScalars withScalars)
            {
                if (scalars is null || !scalars.TryGetValue(state.Parameter.Name, out var values))
                    throw new InvalidDataException($"{file.Path}: the checkpoint has no optimizer scalars for '{state.Parameter.Name}'");
                try { withScalars.LoadScalars(values); }
                catch (InvalidDataException e) { throw new InvalidDataException($"{file.Path}: {e.Message}"); }
            }
            foreach (var t in state.Tensors)
            {
                string name = $"{prefix}{state.Parameter.Name}/{t.Name}";
                if (!file.Contains(name)) throw new InvalidDataException($"{file.Path}: optimizer tensor '{name}' is missing");
                file.ReadInto(name, t.Tensor);
                expectedTensors++;
            }
        }
        int found = file.Tensors.Count(t => t.Name.StartsWith(prefix, StringComparison.Ordinal));
        if (found != expectedTensors)
            throw new InvalidDataException($"{file.Path}: {found} optimizer tensors in the checkpoint, {expectedTensors} expected here");
    }

    /// <summary>The optimizer state alone, as a safetensors file (written atomically).</summary>
    public static void Save(Optimizer optimizer, string path)
    {
        var writer = new SafeTensorsWriter().AddMetadata("kind", Kind);
        AddTo(optimizer, writer);
        writer.Write(path);
    }

    public static void Load(Optimizer optimizer, string path)
    {
        using var file = SafeTensorsFile.Open(path);
        if (!file.Metadata.TryGetValue("kind", out var kind) || kind != Kind)
            throw new InvalidDataException($"{path}: not a {Kind} file");
        LoadFrom(optimizer, file);
    }

    private static string Required(SafeTensorsFile file, string key) =>
        file.Metadata.TryGetValue(key, out var value) ? value : throw new InvalidDataException($"{file.Path}: metadata '{key}' is missing");
}

/// <summary>
/// A parameter state with whole-number fields beyond its step count (GaLore's projection step), which
/// <see cref="OptimizerCheckpoint"/> saves as metadata next to the state's tensors.
/// </summary>
public interface IStateScalars
{
    /// <summary>The values to save, by name.</summary>
    IReadOnlyDictionary<string, long> SaveScalars();

    /// <summary>Restores the values; throws <see cref="InvalidDataException"/> when one is missing.</summary>
    void LoadScalars(IReadOnlyDictionary<string, long> values);
}
