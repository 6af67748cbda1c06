using System.Buffers;
using System.Buffers.Binary;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using Flora.Tensors;
using Microsoft.Win32.SafeHandles;
using Tensor = Flora.Tensors.Tensor;

namespace Flora.Checkpoints;

/// <summary>
/// Element types of the safetensors format. <see cref="SafeTensorDTypeExtensions.Code"/> gives the
/// name a file uses ("F32", "BF16", "F8_E4M3", ...). The sub-byte types of recent Hugging Face
/// releases (F4, F6_E2M3, F6_E3M2) are not supported: a file that uses them is rejected.
/// </summary>
public enum SafeTensorDType
{
    /// <summary>"BOOL": one byte per element, 0 or 1.</summary>
    Bool,
    /// <summary>"U8": unsigned 8-bit integer.</summary>
    U8,
    /// <summary>"I8": signed 8-bit integer.</summary>
    I8,
    /// <summary>"F8_E5M2": 8-bit float, 5 exponent and 2 mantissa bits.</summary>
    F8E5M2,
    /// <summary>"F8_E4M3": 8-bit float, 4 exponent and 3 mantissa bits.</summary>
    F8E4M3,
    /// <summary>"F8_E8M0": 8-bit power-of-two scale (8 exponent bits, no mantissa), as in microscaling formats.</summary>
    F8E8M0,
    /// <summary>"I16": signed 16-bit integer.</summary>
    I16,
    /// <summary>"U16": unsigned 16-bit integer.</summary>
    U16,
    /// <summary>"F16": IEEE half precision.</summary>
    F16,
    /// <summary>"BF16": bfloat16, the top 16 bits of a float32; Flora's <see cref="DType.BFloat16"/>.</summary>
    BF16,
    /// <summary>"I32": signed 32-bit integer; Flora's <see cref="DType.Int32"/>.</summary>
    I32,
    /// <summary>"U32": unsigned 32-bit integer.</summary>
    U32,
    /// <summary>"F32": IEEE single precision; Flora's <see cref="DType.Float32"/>.</summary>
    F32,
    /// <summary>"C64": complex number of two float32 (real, imaginary), 8 bytes.</summary>
    C64,
    /// <summary>"F64": IEEE double precision.</summary>
    F64,
    /// <summary>"I64": signed 64-bit integer (PyTorch's token ids).</summary>
    I64,
    /// <summary>"U64": unsigned 64-bit integer.</summary>
    U64,
}

/// <summary>Element sizes and header names of <see cref="SafeTensorDType"/>, and the file type of a Flora <see cref="DType"/>.</summary>
public static class SafeTensorDTypeExtensions
{
    private static readonly Dictionary<string, SafeTensorDType> ByCode =
        Enum.GetValues<SafeTensorDType>().ToDictionary(d => d.Code(), StringComparer.Ordinal);

    /// <summary>Bytes per element.</summary>
    public static int Size(this SafeTensorDType dtype) => dtype switch
    {
        SafeTensorDType.Bool or SafeTensorDType.U8 or SafeTensorDType.I8
            or SafeTensorDType.F8E5M2 or SafeTensorDType.F8E4M3 or SafeTensorDType.F8E8M0 => 1,
        SafeTensorDType.I16 or SafeTensorDType.U16 or SafeTensorDType.F16 or SafeTensorDType.BF16 => 2,
        SafeTensorDType.I32 or SafeTensorDType.U32 or SafeTensorDType.F32 => 4,
        SafeTensorDType.C64 or SafeTensorDType.F64 or SafeTensorDType.I64 or SafeTensorDType.U64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };

    /// <summary>The name of the type in a safetensors header, e.g. "F32" or "F8_E5M2".</summary>
    public static string Code(this SafeTensorDType dtype) => dtype switch
    {
        SafeTensorDType.Bool => "BOOL",
        SafeTensorDType.F8E5M2 => "F8_E5M2",
        SafeTensorDType.F8E4M3 => "F8_E4M3",
        SafeTensorDType.F8E8M0 => "F8_E8M0",
        _ when Enum.IsDefined(dtype) => dtype.ToString(),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };

    /// <summary>The type a header names with <paramref name="code"/> (case-sensitive, as in the format).</summary>
    public static bool TryParseCode(string code, out SafeTensorDType dtype) => ByCode.TryGetValue(code, out dtype);

    /// <summary>The file type that holds a Flora tensor of <paramref name="dtype"/>.</summary>
    public static SafeTensorDType ToSafeTensorDType(this DType dtype) => dtype switch
    {
        DType.Float32 => SafeTensorDType.F32,
        DType.Int32 => SafeTensorDType.I32,
        DType.BFloat16 => SafeTensorDType.BF16,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };
}

/// <summary>One tensor of a safetensors file as its header describes it.</summary>
public sealed class SafeTensorInfo
{
    private readonly long[] _shape;

    internal SafeTensorInfo(string name, SafeTensorDType dtype, long[] shape, long elementCount, long begin, long end)
    {
        Name = name;
        DType = dtype;
        _shape = shape;
        ElementCount = elementCount;
        Begin = begin;
        End = end;
    }

    /// <summary>The tensor's key in the header (e.g. "transformer.h.0.attn.c_attn.weight").</summary>
    public string Name { get; }

    /// <summary>The element type the header gives (its "dtype").</summary>
    public SafeTensorDType DType { get; }

    /// <summary>Dimensions, outermost first (row-major); empty for a scalar.</summary>
    public IReadOnlyList<long> Shape => _shape;

    /// <summary>Number of elements (1 for a scalar).</summary>
    public long ElementCount { get; }

    /// <summary>First byte of the data, relative to the start of the byte buffer after the header.</summary>
    public long Begin { get; }

    /// <summary>One past the last byte of the data, relative to the start of the byte buffer.</summary>
    public long End { get; }

    /// <summary>Bytes of data: <see cref="End"/> - <see cref="Begin"/>, the element count times the element size.</summary>
    public long ByteCount => End - Begin;

    /// <summary>The shape written like <see cref="Tensors.Shape.ToString"/>: "(a, b)", "()" for a scalar.</summary>
    public string ShapeText => "(" + string.Join(", ", _shape) + ")";

    /// <summary>True when the shape equals <paramref name="shape"/> dimension for dimension.</summary>
    public bool HasShape(Shape shape)
    {
        if (shape.Rank != _shape.Length) return false;
        for (int i = 0; i < _shape.Length; i++)
            if (_shape[i] != shape[i]) return false;
        return true;
    }

    /// <summary>Name, header type and shape, e.g. "wte.weight F32 (50257, 768)".</summary>
    public override string ToString() => $"{Name} {DType.Code()} {ShapeText}";
}

/// <summary>
/// Writes a safetensors file (the Hugging Face format): 8 bytes of little-endian header length N,
/// N bytes of compact UTF-8 JSON padded with spaces to a multiple of 8, then the tensors,
/// little-endian and row-major, in ordinal name order with no gaps. Tensors are collected with
/// <c>Add</c> and only read when <see cref="Write"/> runs, a chunk at a time, so a file of several
/// GB never sits in memory. Writing is atomic: the bytes go to <c>path + ".tmp"</c>, are flushed to
/// the disk, and the temporary file is then renamed over <c>path</c>, so a crash at any moment
/// leaves either the old file or the complete new one.
/// </summary>
/// <remarks>
/// Hugging Face's own writer orders tensors by decreasing alignment first so that every tensor
/// starts at a multiple of its element size; this writer keeps plain name order, so a file that
/// mixes element sizes may hold tensors at unaligned offsets (legal in the format; readers that
/// copy, like <see cref="SafeTensorsFile"/>, do not care).
/// </remarks>
public sealed class SafeTensorsWriter
{
    /// <summary>Elements moved per chunk between a tensor's backend and the file.</summary>
    private const int ChunkElements = 1 << 20;

    private readonly List<Entry> _entries = [];
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly List<KeyValuePair<string, string>> _metadata = [];
    private readonly HashSet<string> _metadataKeys = new(StringComparer.Ordinal);

    /// <summary>Number of tensors added.</summary>
    public int Count => _entries.Count;

    /// <summary>
    /// Adds a Float32 (written as F32) or Int32 (I32) tensor. It is read through its backend when
    /// <see cref="Write"/> runs, so it must stay alive until then.
    /// </summary>
    public SafeTensorsWriter Add(string name, Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.DType is not (DType.Float32 or DType.Int32 or DType.BFloat16))
            throw new ArgumentException($"tensor '{name}' is {tensor.DType}; only Float32, Int32 and BFloat16 tensors can be saved", nameof(tensor));
        if (tensor.IsDisposed) throw new ArgumentException($"tensor '{name}' is disposed", nameof(tensor));
        return AddEntry(name, tensor.DType.ToSafeTensorDType(), ToLongs(tensor.Shape), tensor);
    }

    /// <summary>Adds host floats as F32 of <paramref name="shape"/> (one dimension of data.Length when null). The array is read when <see cref="Write"/> runs.</summary>
    public SafeTensorsWriter Add(string name, float[] data, Shape? shape = null) => AddArray(name, data, SafeTensorDType.F32, shape);

    /// <summary>Adds host ints as I32 of <paramref name="shape"/> (one dimension of data.Length when null).</summary>
    public SafeTensorsWriter Add(string name, int[] data, Shape? shape = null) => AddArray(name, data, SafeTensorDType.I32, shape);

    /// <summary>Adds host longs as I64 of <paramref name="shape"/> (one dimension of data.Length when null).</summary>
    public SafeTensorsWriter Add(string name, long[] data, Shape? shape = null) => AddArray(name, data, SafeTensorDType.I64, shape);

    /// <summary>
    /// Adds raw little-endian bytes as a tensor of any <paramref name="dtype"/> (e.g. F16 weights
    /// already encoded) and <paramref name="shape"/>; when the shape is null it is one dimension of
    /// data.Length / dtype size elements.
    /// </summary>
    public SafeTensorsWriter Add(string name, byte[] data, SafeTensorDType dtype = SafeTensorDType.U8, Shape? shape = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        int size = dtype.Size();
        if (data.Length % size != 0)
            throw new ArgumentException($"tensor '{name}': {data.Length} bytes are not a whole number of {dtype.Code()} elements ({size} bytes each)", nameof(data));
        return AddArray(name, data, dtype, shape, elementsInArray: data.Length / size);
    }

    /// <summary>Adds a string to the header's "__metadata__" map.</summary>
    public SafeTensorsWriter AddMetadata(string key, string value)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        if (!_metadataKeys.Add(key)) throw new ArgumentException($"metadata key '{key}' is added twice", nameof(key));
        _metadata.Add(new(key, value));
        return this;
    }

    /// <summary>
    /// Writes the file atomically (see the class summary). On any failure the temporary file is
    /// deleted and whatever was at <paramref name="path"/> before stays as it was.
    /// </summary>
    public void Write(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var ordered = _entries.OrderBy(e => e.Name, StringComparer.Ordinal).ToList();
        byte[] header = BuildHeader(ordered);
        string temp = path + ".tmp";
        try
        {
            using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 1 << 16))
            {
                Span<byte> length = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
                stream.Write(length);
                stream.Write(header);
                byte[] buffer = ArrayPool<byte>.Shared.Rent(ChunkElements * sizeof(long));
                try
                {
                    foreach (var entry in ordered)
                    {
                        long before = stream.Position;
                        WriteData(stream, entry, buffer);
                        if (stream.Position - before != entry.Bytes)
                            throw new InvalidOperationException($"tensor '{entry.Name}' wrote {stream.Position - before} bytes, expected {entry.Bytes}");
                    }
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    private SafeTensorsWriter AddArray(string name, Array data, SafeTensorDType dtype, Shape? shape, int? elementsInArray = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        int elements = elementsInArray ?? data.Length;
        var s = shape ?? new Shape(elements);
        if (s.Count != elements)
            throw new ArgumentException($"tensor '{name}': shape {s} needs {s.Count} elements but {elements} are given", nameof(shape));
        return AddEntry(name, dtype, ToLongs(s), data);
    }

    private SafeTensorsWriter AddEntry(string name, SafeTensorDType dtype, long[] shape, object source)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name == SafeTensorsFile.MetadataKey)
            throw new ArgumentException($"'{SafeTensorsFile.MetadataKey}' is reserved for the metadata map and cannot name a tensor", nameof(name));
        if (!_names.Add(name)) throw new ArgumentException($"tensor '{name}' is added twice", nameof(name));
        long count = 1;
        foreach (long d in shape) count *= d;
        _entries.Add(new Entry(name, dtype, shape, count * dtype.Size(), source));
        return this;
    }

    private byte[] BuildHeader(List<Entry> ordered)
    {
        var json = new ArrayBufferWriter<byte>();
        // Relaxed escaping keeps non-ASCII names readable, as Hugging Face's serde_json does.
        using (var w = new Utf8JsonWriter(json, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            if (_metadata.Count > 0)
            {
                w.WriteStartObject(SafeTensorsFile.MetadataKey);
                foreach (var (key, value) in _metadata) w.WriteString(key, value);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var entry in ordered)
            {
                w.WriteStartObject(entry.Name);
                w.WriteString("dtype", entry.DType.Code());
                w.WriteStartArray("shape");
                foreach (long d in entry.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + entry.Bytes);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += entry.Bytes;
            }
            w.WriteEndObject();
        }
        int padding = (8 - json.WrittenCount % 8) % 8;
        var header = new byte[json.WrittenCount + padding];
        json.WrittenSpan.CopyTo(header);
        header.AsSpan(json.WrittenCount).Fill((byte)' ');
        return header;
    }

    private static void WriteData(Stream stream, Entry entry, byte[] buffer)
    {
        switch (entry.Source)
        {
            case Tensor tensor:
                WriteTensor(stream, tensor, buffer);
                break;
            case float[] f:
                WriteHost(stream, MemoryMarshal.AsBytes(f.AsSpan()), 4, buffer);
                break;
            case int[] i:
                WriteHost(stream, MemoryMarshal.AsBytes(i.AsSpan()), 4, buffer);
                break;
            case long[] l:
                WriteHost(stream, MemoryMarshal.AsBytes(l.AsSpan()), 8, buffer);
                break;
            case byte[] b:
                WriteHost(stream, b, entry.DType.Size(), buffer);
                break;
            default:
                throw new InvalidOperationException($"tensor '{entry.Name}' has an unknown source {entry.Source.GetType().Name}");
        }
    }

    /// <summary>Downloads the tensor through its backend a chunk at a time, into views of the same storage.</summary>
    private static void WriteTensor(Stream stream, Tensor tensor, byte[] buffer)
    {
        int count = tensor.Count;
        if (count == 0) return;
        using var flat = tensor.View(new Shape(count));
        for (int start = 0; start < count; start += ChunkElements)
        {
            int n = Math.Min(ChunkElements, count - start);
            using var part = flat.View(new Shape(n), start);
            int size = tensor.DType.Size();
            var bytes = buffer.AsSpan(0, n * size);
            if (size == 2) part.CopyTo(MemoryMarshal.Cast<byte, ushort>(bytes));   // the raw bits of BFloat16 elements
            else part.CopyTo(MemoryMarshal.Cast<byte, int>(bytes));                // the raw 4-byte elements (Float32 or Int32)
            SafeTensorsFile.ToLittleEndian(bytes, size);
            stream.Write(bytes);
        }
    }

    private static void WriteHost(Stream stream, ReadOnlySpan<byte> data, int elementSize, byte[] buffer)
    {
        if (BitConverter.IsLittleEndian || elementSize == 1)
        {
            stream.Write(data);
            return;
        }
        for (int start = 0; start < data.Length; start += buffer.Length)
        {
            int n = Math.Min(buffer.Length, data.Length - start);
            var chunk = buffer.AsSpan(0, n);
            data.Slice(start, n).CopyTo(chunk);
            SafeTensorsFile.ToLittleEndian(chunk, elementSize);
            stream.Write(chunk);
        }
    }

    private static long[] ToLongs(Shape shape) => Array.ConvertAll(shape.ToArray(), d => (long)d);

    private static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    private sealed record Entry(string Name, SafeTensorDType DType, long[] Shape, long Bytes, object Source);
}

/// <summary>
/// A safetensors file opened for reading. <see cref="Open"/> reads and checks only the header;
/// tensor data is read from the file when asked for, one tensor at a time. The header is validated
/// strictly: every problem (a truncated file, an absurd header length, invalid UTF-8 or JSON,
/// duplicate keys, a missing or unknown field, a shape that does not match the byte range, ranges
/// that overlap, leave gaps or run past the file) is an <see cref="InvalidDataException"/> whose
/// message starts with the file's path and says what is wrong.
/// </summary>
public sealed class SafeTensorsFile : IDisposable
{
    /// <summary>The header key of the string-to-string metadata map.</summary>
    public const string MetadataKey = "__metadata__";

    /// <summary>Largest header accepted, in bytes (Hugging Face's limit).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>Bytes read per chunk when a tensor is converted or uploaded piecewise.</summary>
    private const int ChunkBytes = 1 << 22;

    private readonly SafeFileHandle _handle;
    private readonly Dictionary<string, SafeTensorInfo> _byName;

    private SafeTensorsFile(string path, SafeFileHandle handle, long fileLength, long headerBytes,
        Dictionary<string, string> metadata, List<SafeTensorInfo> tensors)
    {
        Path = path;
        _handle = handle;
        FileLength = fileLength;
        HeaderBytes = headerBytes;
        Metadata = metadata;
        Tensors = tensors;
        _byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    /// <summary>The path the file was opened with; error messages start with it.</summary>
    public string Path { get; }

    /// <summary>Length of the file when it was opened.</summary>
    public long FileLength { get; }

    /// <summary>Length N of the JSON header (padding included), as the first 8 bytes give it.</summary>
    public long HeaderBytes { get; }

    /// <summary>File position of the byte buffer that the tensors' offsets are relative to.</summary>
    public long DataStart => 8 + HeaderBytes;

    /// <summary>The "__metadata__" map (empty when the header has none).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Every tensor, in the order of their data in the file.</summary>
    public IReadOnlyList<SafeTensorInfo> Tensors { get; }

    /// <summary>True when the header has a tensor called <paramref name="name"/> (ordinal, case-sensitive).</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>The header's description of tensor <paramref name="name"/>.</summary>
    /// <exception cref="InvalidDataException">The file has no tensor of that name.</exception>
    public SafeTensorInfo GetInfo(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _byName.TryGetValue(name, out var info) ? info : throw Bad(Path, $"there is no tensor '{name}' in the file");
    }

    /// <summary>Opens <paramref name="path"/> and validates its header.</summary>
    /// <exception cref="InvalidDataException">The file is not a valid safetensors file; the message says why.</exception>
    public static SafeTensorsFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        // FileShare.Delete lets a writer rename a new checkpoint over this one while it is open.
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        try
        {
            long fileLength = RandomAccess.GetLength(handle);
            if (fileLength < 8)
                throw Bad(path, $"the file is shorter than 8 bytes ({fileLength} bytes): it cannot hold a safetensors header length");
            Span<byte> prefix = stackalloc byte[8];
            ReadExactly(handle, prefix, 0, path, "the header length");
            ulong n = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            if (n > MaxHeaderBytes)
                throw Bad(path, $"the header length {n} is absurd (more than {MaxHeaderBytes / 1_000_000} MB): not a safetensors file, or a corrupt one");
            if ((long)n > fileLength - 8)
                throw Bad(path, $"the header length {n} is larger than the file ({fileLength} bytes) allows");
            var header = new byte[(int)n];
            ReadExactly(handle, header, 8, path, "the header");
            var (metadata, tensors) = ParseHeader(path, header, fileLength - 8 - (long)n);
            return new SafeTensorsFile(path, handle, fileLength, (long)n, metadata, tensors);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads tensor <paramref name="name"/> into <paramref name="destination"/>, which must have the
    /// same shape: a Float32 tensor takes F32, F16 or BF16 data (converted exactly), a BFloat16 tensor takes BF16
    /// (bit for bit) or F32 and F16 (rounded to nearest even), an Int32 tensor takes I32. The data goes through the
    /// destination's backend a chunk at a time.
    /// </summary>
    public void ReadInto(string name, Tensor destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var info = GetInfo(name);
        if (!info.HasShape(destination.Shape))
            throw Bad(Path, $"tensor '{name}' has shape {info.ShapeText} in the file but {destination.Shape} here");
        bool fits = destination.DType switch
        {
            DType.Float32 or DType.BFloat16 => info.DType is SafeTensorDType.F32 or SafeTensorDType.F16 or SafeTensorDType.BF16,
            DType.Int32 => info.DType == SafeTensorDType.I32,
            _ => false,
        };
        if (!fits) throw Bad(Path, $"tensor '{name}' is {info.DType.Code()} in the file and cannot be read into a {destination.DType} tensor");

        int count = destination.Count;
        if (count == 0) return;
        int chunk = Math.Min(count, ChunkBytes / 4);
        using var flat = destination.View(new Shape(count));
        byte[] buffer = ArrayPool<byte>.Shared.Rent(chunk * 4);
        try
        {
            for (int start = 0; start < count; start += chunk)
            {
                int n = Math.Min(chunk, count - start);
                using var part = flat.View(new Shape(n), start);
                if (destination.DType == DType.BFloat16)
                {
                    var bits = MemoryMarshal.Cast<byte, ushort>(buffer.AsSpan(0, n * 2));
                    if (info.DType == SafeTensorDType.BF16) ReadElements(info, start, MemoryMarshal.AsBytes(bits));
                    else
                    {
                        var floats = MemoryMarshal.Cast<byte, float>(buffer.AsSpan(0, n * 4));
                        ReadFloatRange(info, start, floats);
                        for (int i = 0; i < n; i++) bits[i] = BFloat16.RoundToNearestEven(floats[i]);   // in place: bits[i] lies before floats[i]
                    }
                    part.CopyFrom<ushort>(bits);
                }
                else if (destination.DType == DType.Float32)
                {
                    var floats = MemoryMarshal.Cast<byte, float>(buffer.AsSpan(0, n * 4));
                    ReadFloatRange(info, start, floats);
                    part.CopyFrom<float>(floats);
                }
                else
                {
                    var bytes = buffer.AsSpan(0, n * 4);
                    ReadElements(info, start, bytes);
                    part.CopyFrom<int>(MemoryMarshal.Cast<byte, int>(bytes));
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Tensor <paramref name="name"/> as floats: F32 as stored, F16 and BF16 converted exactly.</summary>
    public float[] ReadFloats(string name)
    {
        var info = GetInfo(name);
        if (info.DType is not (SafeTensorDType.F32 or SafeTensorDType.F16 or SafeTensorDType.BF16))
            throw Bad(Path, $"tensor '{name}' is {info.DType.Code()}; only F32, F16 and BF16 tensors can be read as floats");
        var result = new float[ArrayLength(info)];
        ReadFloatRange(info, 0, result);
        return result;
    }

    /// <summary>Tensor <paramref name="name"/>, which must be I32.</summary>
    public int[] ReadInts(string name)
    {
        var info = Expect(name, SafeTensorDType.I32);
        var result = new int[ArrayLength(info)];
        ReadElements(info, 0, MemoryMarshal.AsBytes(result.AsSpan()));
        return result;
    }

    /// <summary>Tensor <paramref name="name"/>, which must be I64.</summary>
    public long[] ReadLongs(string name)
    {
        var info = Expect(name, SafeTensorDType.I64);
        var result = new long[ArrayLength(info)];
        ReadElements(info, 0, MemoryMarshal.AsBytes(result.AsSpan()));
        return result;
    }

    /// <summary>The raw bytes of tensor <paramref name="name"/>, of any dtype, as stored (little-endian).</summary>
    public byte[] ReadBytes(string name)
    {
        var info = GetInfo(name);
        if (info.ByteCount > Array.MaxLength)
            throw Bad(Path, $"tensor '{name}' has {info.ByteCount} bytes, more than one array can hold");
        var result = new byte[info.ByteCount];
        ReadExactly(_handle, result, DataStart + info.Begin, Path, $"tensor '{name}'");
        return result;
    }

    /// <summary>Closes the file; reads afterwards throw <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose() => _handle.Dispose();

    // ---- reading data ---------------------------------------------------------------------------

    private SafeTensorInfo Expect(string name, SafeTensorDType dtype)
    {
        var info = GetInfo(name);
        if (info.DType != dtype)
            throw Bad(Path, $"tensor '{name}' is {info.DType.Code()} in the file, not {dtype.Code()}");
        return info;
    }

    private int ArrayLength(SafeTensorInfo info) => info.ElementCount <= Array.MaxLength
        ? (int)info.ElementCount
        : throw Bad(Path, $"tensor '{info.Name}' has {info.ElementCount} elements, more than one array can hold");

    /// <summary>Elements [first, first + destination.Length / size) of the tensor, as stored, converted to the host's byte order.</summary>
    private void ReadElements(SafeTensorInfo info, long first, Span<byte> destination)
    {
        int size = info.DType.Size();
        ReadExactly(_handle, destination, DataStart + info.Begin + first * size, Path, $"tensor '{info.Name}'");
        ToLittleEndian(destination, size);
    }

    /// <summary>Elements [first, first + destination.Length) of an F32, F16 or BF16 tensor as floats.</summary>
    private void ReadFloatRange(SafeTensorInfo info, long first, Span<float> destination)
    {
        if (info.DType == SafeTensorDType.F32)
        {
            ReadElements(info, first, MemoryMarshal.AsBytes(destination));
            return;
        }
        int chunk = Math.Min(destination.Length, ChunkBytes / 2);
        ushort[] buffer = ArrayPool<ushort>.Shared.Rent(chunk);
        try
        {
            for (int done = 0; done < destination.Length; done += chunk)
            {
                int n = Math.Min(chunk, destination.Length - done);
                var half = buffer.AsSpan(0, n);
                ReadElements(info, first + done, MemoryMarshal.AsBytes(half));
                var output = destination.Slice(done, n);
                if (info.DType == SafeTensorDType.F16)
                {
                    TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<ushort, Half>(half), output);
                }
                else
                {
                    // bfloat16 is the upper half of a float32.
                    for (int i = 0; i < n; i++) output[i] = BitConverter.Int32BitsToSingle(half[i] << 16);
                }
            }
        }
        finally
        {
            ArrayPool<ushort>.Shared.Return(buffer);
        }
    }

    private static void ReadExactly(SafeFileHandle handle, Span<byte> destination, long offset, string path, string what)
    {
        while (!destination.IsEmpty)
        {
            int n = RandomAccess.Read(handle, destination, offset);
            if (n <= 0) throw Bad(path, $"the file ended while reading {what} (was it truncated after it was opened?)");
            destination = destination[n..];
            offset += n;
        }
    }

    /// <summary>Turns little-endian elements of <paramref name="size"/> bytes into host order and back (nothing to do on little-endian hosts).</summary>
    internal static void ToLittleEndian(Span<byte> bytes, int size)
    {
        if (BitConverter.IsLittleEndian) return;
        switch (size)
        {
            case 2: BinaryPrimitives.ReverseEndianness(MemoryMarshal.Cast<byte, ushort>(bytes), MemoryMarshal.Cast<byte, ushort>(bytes)); break;
            case 4: BinaryPrimitives.ReverseEndianness(MemoryMarshal.Cast<byte, uint>(bytes), MemoryMarshal.Cast<byte, uint>(bytes)); break;
            case 8: BinaryPrimitives.ReverseEndianness(MemoryMarshal.Cast<byte, ulong>(bytes), MemoryMarshal.Cast<byte, ulong>(bytes)); break;
        }
    }

    // ---- header validation ------------------------------------------------------------------------

    private static (Dictionary<string, string> Metadata, List<SafeTensorInfo> Tensors) ParseHeader(string path, byte[] header, long bufferLength)
    {
        if (!System.Text.Unicode.Utf8.IsValid(header)) throw Bad(path, "the header is not valid UTF-8");
        if (header.Length >= 3 && header[0] == 0xEF && header[1] == 0xBB && header[2] == 0xBF)
            throw Bad(path, "the header starts with a UTF-8 byte-order mark, which JSON does not allow");
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw Bad(path, $"the header is not valid JSON: {e.Message}");
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw Bad(path, $"the header is not a JSON object (it is {Article(root.ValueKind)})");
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var tensors = new List<SafeTensorInfo>();
            var keys = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in root.EnumerateObject())
            {
                if (!keys.Add(property.Name)) throw Bad(path, $"the header has the key '{Printable(property.Name)}' twice");
                if (property.Name == MetadataKey) ReadMetadata(path, property.Value, metadata);
                else tensors.Add(ReadEntry(path, property.Name, property.Value, bufferLength));
            }
            CheckCoverage(path, tensors, bufferLength);
            return (metadata, tensors);
        }
    }

    private static void ReadMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind == JsonValueKind.Null) return;
        if (value.ValueKind != JsonValueKind.Object)
            throw Bad(path, $"{MetadataKey} is {Article(value.ValueKind)}, not a map of strings to strings");
        foreach (var item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
                throw Bad(path, $"{MetadataKey} is not a map of strings to strings: '{Printable(item.Name)}' is {Article(item.Value.ValueKind)}");
            if (!metadata.TryAdd(item.Name, item.Value.GetString()!))
                throw Bad(path, $"{MetadataKey} has the key '{Printable(item.Name)}' twice");
        }
    }

    private static SafeTensorInfo ReadEntry(string path, string name, JsonElement value, long bufferLength)
    {
        string tensor = $"tensor '{Printable(name)}'";
        if (value.ValueKind != JsonValueKind.Object)
            throw Bad(path, $"{tensor} is described by {Article(value.ValueKind)}, not an object");
        JsonElement? dtypeValue = null, shapeValue = null, offsetsValue = null;
        var fields = new HashSet<string>(StringComparer.Ordinal);
        foreach (var field in value.EnumerateObject())
        {
            if (!fields.Add(field.Name)) throw Bad(path, $"{tensor} has the key '{Printable(field.Name)}' twice");
            switch (field.Name)
            {
                case "dtype": dtypeValue = field.Value; break;
                case "shape": shapeValue = field.Value; break;
                case "data_offsets": offsetsValue = field.Value; break;
            }
        }
        if (dtypeValue is not JsonElement dt) throw Bad(path, $"{tensor} is missing 'dtype'");
        if (shapeValue is not JsonElement sh) throw Bad(path, $"{tensor} is missing 'shape'");
        if (offsetsValue is not JsonElement off) throw Bad(path, $"{tensor} is missing 'data_offsets'");

        if (dt.ValueKind != JsonValueKind.String) throw Bad(path, $"{tensor} has a dtype that is not a string: {Printable(dt.GetRawText())}");
        string code = dt.GetString()!;
        if (!SafeTensorDTypeExtensions.TryParseCode(code, out var dtype))
            throw Bad(path, $"{tensor} has unknown dtype '{Printable(code)}'");

        if (sh.ValueKind != JsonValueKind.Array) throw Bad(path, $"{tensor} has a shape that is not an array: {Printable(sh.GetRawText())}");
        var shape = new long[sh.GetArrayLength()];
        int axis = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (!TryGetNonNegative(d, out shape[axis]))
                throw Bad(path, $"{tensor} has a shape dimension that is not a non-negative integer: {Printable(d.GetRawText())}");
            axis++;
        }

        if (off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2
            || !TryGetNonNegative(off[0], out long begin) || !TryGetNonNegative(off[1], out long end))
            throw Bad(path, $"{tensor} has data_offsets {Printable(off.GetRawText())}; they must be two non-negative integers [begin, end]");
        if (begin > end) throw Bad(path, $"{tensor} has data_offsets [{begin}, {end}]: the end comes before the begin");

        long count, bytes;
        try
        {
            count = 1;
            foreach (long d in shape) count = checked(count * d);
            bytes = checked(count * dtype.Size());
        }
        catch (OverflowException)
        {
            throw Bad(path, $"{tensor} has shape ({string.Join(", ", shape)}), whose byte size overflows");
        }
        if (bytes != end - begin)
            throw Bad(path, $"{tensor} has {end - begin} bytes (data_offsets [{begin}, {end}]) but its shape ({string.Join(", ", shape)}) of {code} needs {bytes} bytes");
        if (end > bufferLength)
            throw Bad(path, $"{tensor} ends at byte {end} of the data, beyond the end of the file (the data after the header has {bufferLength} bytes)");
        return new SafeTensorInfo(name, dtype, shape, count, begin, end);
    }

    /// <summary>Sorts the tensors by offset and checks that they cover the data buffer exactly.</summary>
    private static void CheckCoverage(string path, List<SafeTensorInfo> tensors, long bufferLength)
    {
        tensors.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin)
            : a.End != b.End ? a.End.CompareTo(b.End)
            : string.CompareOrdinal(a.Name, b.Name));
        long expected = 0;
        SafeTensorInfo? previous = null;
        foreach (var t in tensors)
        {
            if (t.Begin < expected)
                throw Bad(path, $"tensors '{Printable(previous!.Name)}' (bytes {previous.Begin}..{previous.End}) and '{Printable(t.Name)}' (bytes {t.Begin}..{t.End}) overlap");
            if (t.Begin > expected)
                throw Bad(path, previous is null
                    ? $"the data has a gap of {t.Begin} bytes before the first tensor '{Printable(t.Name)}'"
                    : $"the data has a gap of {t.Begin - expected} bytes between tensors '{Printable(previous.Name)}' and '{Printable(t.Name)}'");
            expected = t.End;
            previous = t;
        }
        if (expected != bufferLength)
            throw Bad(path, $"the tensors end at byte {expected} of the data but the file has {bufferLength - expected} more bytes: {bufferLength - expected} unused bytes at the end");
    }

    private static bool TryGetNonNegative(JsonElement e, out long value)
    {
        value = 0;
        if (e.ValueKind != JsonValueKind.Number || !e.TryGetUInt64(out ulong u) || u > long.MaxValue) return false;
        value = (long)u;
        return true;
    }

    private static string Article(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => kind.ToString(),
    };

    /// <summary>A name or JSON fragment cut short and freed of control characters, for one-line messages.</summary>
    private static string Printable(string s)
    {
        string cut = s.Length > 60 ? s[..60] + "..." : s;
        return string.Create(cut.Length, cut, (span, source) =>
        {
            for (int i = 0; i < source.Length; i++) span[i] = char.IsControl(source[i]) ? '?' : source[i];
        });
    }

    private static InvalidDataException Bad(string path, string problem) => new($"{path}: {problem}");
}
