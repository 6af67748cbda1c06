using System.Text;

namespace Flora.Tensors;

/// <summary>
/// The binary pieces Flora's state files are made of (little-endian, via BinaryWriter): a header
/// line naming the kind of file and its version, length-prefixed UTF-8 strings, and tensors as
/// (name, rank, dims..., float32 data). Readers check every piece and throw
/// <see cref="InvalidDataException"/> saying what was expected and what was found.
/// </summary>
public static class TensorIO
{
    public static void WriteHeader(BinaryWriter writer, string kind, int version)
    {
        writer.Write(kind);
        writer.Write(version);
    }

    public static void ReadHeader(BinaryReader reader, string kind, int version)
    {
        string found;
        try { found = reader.ReadString(); }
        catch (Exception e) when (e is EndOfStreamException or IOException) { throw new InvalidDataException($"not a {kind} file: it is empty or truncated"); }
        if (found != kind) throw new InvalidDataException($"not a {kind} file (it starts with '{Printable(found)}')");
        int v = reader.ReadInt32();
        if (v != version) throw new InvalidDataException($"{kind} version {v} is not supported (this build reads version {version})");
    }

    public static void Write(BinaryWriter writer, string name, Tensor tensor)
    {
        if (tensor.DType != DType.Float32) throw new ArgumentException($"only Float32 tensors are saved; '{name}' is {tensor.DType}");
        writer.Write(name);
        writer.Write(tensor.Shape.Rank);
        foreach (int d in tensor.Shape.ToArray()) writer.Write(d);
        var data = new float[tensor.Count];
        tensor.Backend.Download(tensor, data);
        writer.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()));
    }

    /// <summary>Reads a tensor written by <see cref="Write"/> into <paramref name="tensor"/>, which must have the same name and shape.</summary>
    public static void ReadInto(BinaryReader reader, string expectedName, Tensor tensor)
    {
        string name = reader.ReadString();
        if (name != expectedName) throw new InvalidDataException($"expected tensor '{expectedName}', found '{Printable(name)}'");
        int rank = reader.ReadInt32();
        if (rank < 0 || rank > 8) throw new InvalidDataException($"tensor '{name}': corrupt rank {rank}");
        var dims = new int[rank];
        for (int i = 0; i < rank; i++) dims[i] = reader.ReadInt32();
        var shape = new Shape(dims);
        if (shape != tensor.Shape) throw new InvalidDataException($"tensor '{name}' has shape {shape} in the file but {tensor.Shape} here");
        var data = new float[tensor.Count];
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan());
        if (reader.Read(bytes) != bytes.Length) throw new InvalidDataException($"tensor '{name}' is truncated");
        tensor.Backend.Upload(data, tensor);
    }

    private static string Printable(string s) => s.Length > 40 ? s[..40] + "..." : s;
}
