using Flora.Tensors;

namespace Flora.Optim;

/// <summary>
/// Saves and loads the whole state of an optimizer:
/// <code>
/// header "flora.optimizer" version 1
/// optimizer type name, configuration string, parameter count
/// per parameter: name, step, tensor count, tensors (name, shape, data)
/// </code>
/// Loading refuses, with <see cref="InvalidDataException"/>, a different optimizer type, a different
/// configuration (rank, momentum kind, ...), an unknown parameter or a tensor of another shape.
/// FLORA's projections are not saved: they are regenerated from the seeds and steps, so a resumed
/// run continues bit for bit.
/// </summary>
public static class OptimizerCheckpoint
{
    public const string Kind = "flora.optimizer";
    public const int Version = 1;

    public static void Save(Optimizer optimizer, BinaryWriter writer)
    {
        TensorIO.WriteHeader(writer, Kind, Version);
        writer.Write(optimizer.GetType().Name);
        writer.Write(optimizer.Configuration);
        var states = optimizer.States;
        writer.Write(states.Count);
        foreach (var state in states)
        {
            writer.Write(state.Parameter.Name);
            writer.Write(state.Step);
            writer.Write(state.Tensors.Count);
            foreach (var t in state.Tensors) TensorIO.Write(writer, t.Name, t.Tensor);
        }
    }

    public static void Load(Optimizer optimizer, BinaryReader reader)
    {
        TensorIO.ReadHeader(reader, Kind, Version);
        string type = reader.ReadString();
        if (type != optimizer.GetType().Name)
            throw new InvalidDataException($"the checkpoint holds {type} state; this optimizer is {optimizer.GetType().Name}");
        string configuration = reader.ReadString();
        if (configuration != optimizer.Configuration)
            throw new InvalidDataException($"the checkpoint's {type} was configured '{configuration}'; this one is '{optimizer.Configuration}'");
        var byName = optimizer.States.ToDictionary(s => s.Parameter.Name);
        int count = reader.ReadInt32();
        if (count != byName.Count)
            throw new InvalidDataException($"the checkpoint has optimizer state for {count} parameters; this optimizer has {byName.Count}");
        for (int i = 0; i < count; i++)
        {
            string name = reader.ReadString();
            if (!byName.TryGetValue(name, out var state))
                throw new InvalidDataException($"the checkpoint has optimizer state for '{name}', which this optimizer does not manage");
            state.Step = reader.ReadInt64();
            int tensors = reader.ReadInt32();
            if (tensors != state.Tensors.Count)
                throw new InvalidDataException($"'{name}': {tensors} state tensors in the checkpoint, {state.Tensors.Count} here");
            foreach (var t in state.Tensors) TensorIO.ReadInto(reader, t.Name, t.Tensor);
        }
    }

    public static void Save(Optimizer optimizer, string path)
    {
        string temp = path + ".tmp";
        using (var writer = new BinaryWriter(File.Create(temp)))
            Save(optimizer, writer);
        File.Move(temp, path, overwrite: true);
    }

    public static void Load(Optimizer optimizer, string path)
    {
        using var reader = new BinaryReader(File.OpenRead(path));
        try
        {
            Load(optimizer, reader);
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException($"{path}: the optimizer state is truncated");
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
    }
}
