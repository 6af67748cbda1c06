using System.Text.Json;
using Flora.Checkpoints;

namespace Flora.Optim;

/// <summary>
/// Saves and loads the whole state of an optimizer in the safetensors format shared with training
/// checkpoints: tensors "{prefix}{parameter}/{state}" (e.g. "optimizer/h.0.attn.c_attn.weight/exp_avg",
/// FLORA's compressed momentum among them) and metadata "{prefix}type", "{prefix}configuration" and
/// "{prefix}steps" (a JSON map of parameter to update count). Loading refuses, with
/// <see cref="InvalidDataException"/>, another optimizer type, another configuration (rank, momentum
/// kind, ...), another set of parameters or a tensor of another shape. Projections are not saved:
/// they are regenerated from the seeds and steps, so a resumed run continues bit for bit.
/// </summary>
public static class OptimizerCheckpoint
{
    public const string Kind = "flora.optimizer";
    public const string DefaultPrefix = "optimizer/";

    public static void AddTo(Optimizer optimizer, SafeTensorsWriter writer, string prefix = DefaultPrefix)
    {
        var states = optimizer.States;
        writer.AddMetadata(prefix + "type", optimizer.GetType().Name);
        writer.AddMetadata(prefix + "configuration", optimizer.Configuration);
        writer.AddMetadata(prefix + "steps", JsonSerializer.Serialize(states.ToDictionary(s => s.Parameter.Name, s => s.Step)));
        foreach (var state in states)
            foreach (var t in state.Tensors)
                writer.Add($"{prefix}{state.Parameter.Name}/{t.Name}", t.Tensor);
    }

    public static void LoadFrom(Optimizer optimizer, SafeTensorsFile file, string prefix = DefaultPrefix)
    {
        string type = Required(file, prefix + "type");
        if (type != optimizer.GetType().Name)
            throw new InvalidDataException($"{file.Path}: the checkpoint holds {type} state; this optimizer is {optimizer.GetType().Name}");
        string configuration = Required(file, prefix + "configuration");
        if (configuration != optimizer.Configuration)
            throw new InvalidDataException($"{file.Path}: the checkpoint's {type} was configured '{configuration}'; this one is '{optimizer.Configuration}'");
        Dictionary<string, long> steps;
        try { steps = JsonSerializer.Deserialize<Dictionary<string, long>>(Required(file, prefix + "steps")) ?? []; }
        catch (JsonException e) { throw new InvalidDataException($"{file.Path}: corrupt optimizer steps: {e.Message}"); }
        var states = optimizer.States;
        if (steps.Count != states.Count)
            throw new InvalidDataException($"{file.Path}: the checkpoint has optimizer state for {steps.Count} parameters; this optimizer has {states.Count}");
        int expectedTensors = 0;
        foreach (var state in states)
        {
            if (!steps.TryGetValue(state.Parameter.Name, out long step))
                throw new InvalidDataException($"{file.Path}: the checkpoint has no optimizer state for '{state.Parameter.Name}'");
            state.Step = step;
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
