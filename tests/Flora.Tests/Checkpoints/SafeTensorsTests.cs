using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using Flora.Backends;
using Flora.Checkpoints;
using Flora.Tensors;
using Xunit.Abstractions;

namespace Flora.Tests.Checkpoints;

/// <summary>
/// The safetensors writer and reader: round trips, exact bytes, a file laid out exactly as Hugging
/// Face's library writes it, every malformed header rejected with a message that says why, atomic
/// replacement when a write fails midway, and a fuzz test: thousands of mutated files, each either
/// read completely or rejected with <see cref="InvalidDataException"/>.
/// </summary>
public class SafeTensorsTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("flora-safetensors-").FullName;

    private string PathOf(string name) => Path.Combine(_temp, name);

    /// <summary>A file from its header text and data: the length prefix, the header (padded with spaces to 8 bytes unless told not to), the data.</summary>
    internal static byte[] Build(string json, byte[] data, bool pad = true, ulong? headerLength = null)
    {
        byte[] header = Encoding.UTF8.GetBytes(json);
        return BuildRaw(header, data, pad, headerLength);
    }

    internal static byte[] BuildRaw(byte[] header, byte[] data, bool pad = true, ulong? headerLength = null)
    {
        int padding = pad ? (8 - header.Length % 8) % 8 : 0;
        var file = new byte[8 + header.Length + padding + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, headerLength ?? (ulong)(header.Length + padding));
        header.CopyTo(file, 8);
        file.AsSpan(8 + header.Length, padding).Fill((byte)' ');
        data.CopyTo(file, 8 + header.Length + padding);
        return file;
    }

    private string WriteFile(string name, byte[] bytes)
    {
        string path = PathOf(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    // ---- round trip ---------------------------------------------------------------------------------

    [Fact]
    public void Round_trip_of_tensors_arrays_and_metadata()
    {
        using var cpu = TestUtil.Cpu();
        using var weight = TestUtil.Random(cpu, 11, 0.7f, 3, 4);
        using var labels = TestUtil.Labels(cpu, 3, -1, int.MaxValue, 0, 9);
        float[] cube = [1, 2, 3, 4, 5, 6, 7, 8.5f];
        byte[] halves = [0x00, 0x3C, 0x00, 0xC0];                          // F16 1.0, -2.0
        var writer = new SafeTensorsWriter()
            .Add("model.weight", weight)
            .Add("model.labels", labels)
            .Add("cube", cube, new Shape(2, 2, 2))
            .Add("step", new long[] { 1L << 40 }, new Shape())
            .Add("counts", new[] { 5, 6, 7 })
            .Add("mask", new byte[] { 1, 0, 1, 1, 0 })
            .Add("half", halves, SafeTensorDType.F16)
            .Add("empty", Array.Empty<float>(), new Shape(0, 3))
            .Add("größe.λ", new[] { 42f })
            .AddMetadata("format", "flora")
            .AddMetadata("note", "ünïcödé ✓ \"quoted\"\n");
        string path = PathOf("model.safetensors");
        writer.Write(path);
        Assert.False(File.Exists(path + ".tmp"));

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(new Dictionary<string, string> { ["format"] = "flora", ["note"] = "ünïcödé ✓ \"quoted\"\n" }, file.Metadata);
        // The data is laid out in ordinal name order.
        Assert.Equal(new[] { "counts", "cube", "empty", "größe.λ", "half", "mask", "model.labels", "model.weight", "step" },
            file.Tensors.Select(t => t.Name));
        Assert.Equal(9, file.Tensors.Count);
        Assert.True(file.Contains("cube"));
        Assert.False(file.Contains("Cube"));

        var info = file.GetInfo("model.weight");
        Assert.Equal(SafeTensorDType.F32, info.DType);
        Assert.Equal(new long[] { 3, 4 }, info.Shape);
        Assert.Equal(48, info.ByteCount);
        Assert.Equal("(3, 4)", info.ShapeText);
        Assert.Equal(TestUtil.ToArray(weight), file.ReadFloats("model.weight"));
        Assert.Equal(new[] { 3, -1, int.MaxValue, 0, 9 }, file.ReadInts("model.labels"));
        Assert.Equal(cube, file.ReadFloats("cube"));
        Assert.Equal(new long[] { 2, 2, 2 }, file.GetInfo("cube").Shape);
        Assert.Equal(new[] { 1L << 40 }, file.ReadLongs("step"));
        Assert.Empty(file.GetInfo("step").Shape);
        Assert.Equal("()", file.GetInfo("step").ShapeText);
        Assert.Equal(new[] { 5, 6, 7 }, file.ReadInts("counts"));
        Assert.Equal(new byte[] { 1, 0, 1, 1, 0 }, file.ReadBytes("mask"));
        Assert.Equal(SafeTensorDType.U8, file.GetInfo("mask").DType);
        Assert.Equal(new[] { 1f, -2f }, file.ReadFloats("half"));
        Assert.Equal(halves, file.ReadBytes("half"));
        Assert.Empty(file.ReadFloats("empty"));
        Assert.Equal(new long[] { 0, 3 }, file.GetInfo("empty").Shape);
        Assert.Equal(new[] { 42f }, file.ReadFloats("größe.λ"));

        using var weightBack = cpu.Allocate(new Shape(3, 4), MemoryTag.Parameters);
        file.ReadInto("model.weight", weightBack);
        Assert.Equal(TestUtil.ToArray(weight), TestUtil.ToArray(weightBack));
        using var labelsBack = cpu.Allocate(new Shape(5), MemoryTag.Activations, DType.Int32);
        file.ReadInto("model.labels", labelsBack);
        var ints = new int[5];
        cpu.Download(labelsBack, ints);
        Assert.Equal(new[] { 3, -1, int.MaxValue, 0, 9 }, ints);
        using var halfBack = cpu.Allocate(new Shape(2), MemoryTag.Parameters);
        file.ReadInto("half", halfBack);                                      // F16 converted into a Float32 tensor
        Assert.Equal(new[] { 1f, -2f }, TestUtil.ToArray(halfBack));
    }

    [Fact]
    public void Tensors_larger_than_one_chunk_stream_through_views()
    {
        using var cpu = TestUtil.Cpu();
        const int count = (1 << 20) * 2 + 37;                                  // more than two chunks of the writer and the reader
        using var big = TestUtil.Random(cpu, 5, 1f, count);
        using var view = big.View(new Shape(1000, 3), 17);                     // a view at an element offset
        string path = PathOf("big.safetensors");
        new SafeTensorsWriter().Add("big", big).Add("view", view).Write(path);
        Assert.Equal(8 + HeaderLength(path) + 4L * (count + 3000), new FileInfo(path).Length);

        using var file = SafeTensorsFile.Open(path);
        var expected = TestUtil.ToArray(big);
        Assert.Equal(expected, file.ReadFloats("big"));
        Assert.Equal(expected.AsSpan(17, 3000).ToArray(), file.ReadFloats("view"));
        using var back = cpu.Allocate(new Shape(count), MemoryTag.Parameters);
        file.ReadInto("big", back);
        Assert.Equal(expected, TestUtil.ToArray(back));
    }

    /// <summary>The header length N that the first 8 bytes of the file give.</summary>
    private static long HeaderLength(string path)
    {
        var prefix = new byte[8];
        using (var stream = File.OpenRead(path)) stream.ReadExactly(prefix);
        return (long)BinaryPrimitives.ReadUInt64LittleEndian(prefix);
    }

    // ---- exact bytes ----------------------------------------------------------------------------------

    [Fact]
    public void Tiny_file_has_exactly_the_hand_checked_bytes()
    {
        string path = PathOf("tiny.safetensors");
        new SafeTensorsWriter()
            .Add("b", new[] { 7 }, new Shape())                               // added first, written second: name order
            .Add("a", new[] { 1f, -2f })
            .AddMetadata("format", "pt")
            .Write(path);

        // JSON, 138 bytes: {"__metadata__":{"format":"pt"},  = 32
        //                  "a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},  = 53
        //                  "b":{"dtype":"I32","shape":[],"data_offsets":[8,12]}}  = 53
        // padded with 6 spaces to 144 = 0x90.
        byte[] expected =
        [
            0x90, 0, 0, 0, 0, 0, 0, 0,
            .. Encoding.ASCII.GetBytes("{\"__metadata__\":{\"format\":\"pt\"},"),
            .. Encoding.ASCII.GetBytes("\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"),
            .. Encoding.ASCII.GetBytes("\"b\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[8,12]}}"),
            .. "      "u8,
            0x00, 0x00, 0x80, 0x3F,                                             // 1.0f
            0x00, 0x00, 0x00, 0xC0,                                             // -2.0f
            0x07, 0x00, 0x00, 0x00,                                             // 7
        ];
        Assert.Equal(8 + 144 + 12, expected.Length);
        Assert.Equal(expected, File.ReadAllBytes(path));
    }

    [Fact]
    public void Empty_file_is_the_one_hugging_face_writes()
    {
        // Hugging Face's serializer writes {} and six spaces for no tensors and no metadata.
        string path = PathOf("empty.safetensors");
        new SafeTensorsWriter().Write(path);
        Assert.Equal(new byte[] { 8, 0, 0, 0, 0, 0, 0, 0, (byte)'{', (byte)'}', 32, 32, 32, 32, 32, 32 }, File.ReadAllBytes(path));
        using var file = SafeTensorsFile.Open(path);
        Assert.Empty(file.Tensors);
        Assert.Empty(file.Metadata);
    }

    /// <summary>
    /// The file Hugging Face's safetensors library writes for
    /// <c>save_file({"weight": f16 [[1, -2], [0.5, 65504]], "scale": bf16 [1, -3], "bias": f32 [0.5, -1.25], "ids": i64 [1, -2, 300]}, metadata={"format": "pt"})</c>:
    /// compact JSON with "__metadata__" first and each entry as dtype, shape, data_offsets; the
    /// tensors ordered by decreasing dtype (I64, F32, BF16, F16), then name, so that each starts
    /// at a multiple of its element size; the header padded with spaces to a multiple of 8.
    /// </summary>
    internal static byte[] HuggingFaceFile()
    {
        // JSON: 268 bytes, padded with 4 spaces to 272 = 0x110.
        string json = "{\"__metadata__\":{\"format\":\"pt\"},"
            + "\"ids\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[0,24]},"
            + "\"bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]},"
            + "\"scale\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[32,36]},"
            + "\"weight\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[36,44]}}";
        byte[] bytes =
        [
            0x10, 0x01, 0, 0, 0, 0, 0, 0,
            .. Encoding.ASCII.GetBytes(json),
            .. "    "u8,
            0x01, 0, 0, 0, 0, 0, 0, 0,                                          // ids: 1
            0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,                     //      -2
            0x2C, 0x01, 0, 0, 0, 0, 0, 0,                                       //      300
            0x00, 0x00, 0x00, 0x3F,                                             // bias: 0.5f
            0x00, 0x00, 0xA0, 0xBF,                                             //       -1.25f
            0x80, 0x3F,                                                         // scale: bf16 1.0
            0x40, 0xC0,                                                         //        bf16 -3.0
            0x00, 0x3C, 0x00, 0xC0,                                             // weight: f16 1.0, -2.0
            0x00, 0x38, 0xFF, 0x7B,                                             //         f16 0.5, 65504
        ];
        if (json.Length != 268 || bytes.Length != 8 + 272 + 44) throw new InvalidOperationException("hand-built file miscounted");
        return bytes;
    }

    [Fact]
    public void Reads_a_file_laid_out_as_hugging_face_writes_it()
    {
        string path = WriteFile("hf.safetensors", HuggingFaceFile());
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(272, file.HeaderBytes);
        Assert.Equal(0, file.DataStart % 8);
        Assert.Equal("pt", Assert.Single(file.Metadata).Value);
        Assert.Equal(new[] { "ids", "bias", "scale", "weight" }, file.Tensors.Select(t => t.Name));
        foreach (var t in file.Tensors) Assert.Equal(0, (file.DataStart + t.Begin) % t.DType.Size());
        Assert.Equal(new[] { SafeTensorDType.I64, SafeTensorDType.F32, SafeTensorDType.BF16, SafeTensorDType.F16 }, file.Tensors.Select(t => t.DType));
        Assert.Equal(new[] { 1L, -2L, 300L }, file.ReadLongs("ids"));
        Assert.Equal(new[] { 0.5f, -1.25f }, file.ReadFloats("bias"));
        Assert.Equal(new[] { 1f, -3f }, file.ReadFloats("scale"));
        Assert.Equal(new[] { 1f, -2f, 0.5f, 65504f }, file.ReadFloats("weight"));
        Assert.Equal(new long[] { 2, 2 }, file.GetInfo("weight").Shape);

        using var cpu = TestUtil.Cpu();
        using var weight = cpu.Allocate(new Shape(2, 2), MemoryTag.Parameters);
        file.ReadInto("weight", weight);
        Assert.Equal(new[] { 1f, -2f, 0.5f, 65504f }, TestUtil.ToArray(weight));
        using var scale = cpu.Allocate(new Shape(2), MemoryTag.Parameters);
        file.ReadInto("scale", scale);
        Assert.Equal(new[] { 1f, -3f }, TestUtil.ToArray(scale));

        // Written again by Flora (name order, so other offsets): the same tensors and metadata.
        string again = PathOf("again.safetensors");
        var writer = new SafeTensorsWriter().AddMetadata("format", "pt");
        foreach (var t in file.Tensors) writer.Add(t.Name, file.ReadBytes(t.Name), t.DType, new Shape(t.Shape.Select(d => (int)d).ToArray()));
        writer.Write(again);
        using var copy = SafeTensorsFile.Open(again);
        Assert.Equal(new[] { "bias", "ids", "scale", "weight" }, copy.Tensors.Select(t => t.Name));
        foreach (var t in file.Tensors)
        {
            Assert.Equal(file.ReadBytes(t.Name), copy.ReadBytes(t.Name));
            Assert.Equal(t.Shape, copy.GetInfo(t.Name).Shape);
        }
    }

    [Fact]
    public void Written_headers_are_padded_with_spaces_and_tensors_leave_no_gaps()
    {
        string path = PathOf("layout.safetensors");
        for (int nameLength = 1; nameLength <= 9; nameLength++)
        {
            new SafeTensorsWriter().Add(new string('x', nameLength), new[] { 1f, 2f, 3f }).Add("y", new byte[] { 9 }).Write(path);
            byte[] bytes = File.ReadAllBytes(path);
            long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
            Assert.Equal(0, n % 8);
            string header = Encoding.UTF8.GetString(bytes, 8, (int)n);
            Assert.EndsWith("}", header.TrimEnd(' '));
            Assert.True(header.Length - header.TrimEnd(' ').Length < 8);
            Assert.Equal(8 + n + 12 + 1, bytes.Length);
        }
    }

    // ---- malformed files --------------------------------------------------------------------------------

    private const string F32x1 = "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}";

    /// <summary>Each malformed case and a word its message must contain.</summary>
    public static TheoryData<string, string> MalformedCases => new()
    {
        { "empty file", "shorter than 8 bytes" },
        { "three bytes", "shorter than 8 bytes" },
        { "header length 200 MB", "absurd" },
        { "header length 2^64 - 1", "absurd" },
        { "header length past the end", "larger than the file" },
        { "header not UTF-8", "not valid UTF-8" },
        { "byte-order mark", "byte-order mark" },
        { "truncated JSON", "not valid JSON" },
        { "trailing garbage after JSON", "not valid JSON" },
        { "comment in JSON", "not valid JSON" },
        { "header is an array", "not a JSON object" },
        { "header is a string", "not a JSON object" },
        { "entry is an array", "not an object" },
        { "missing dtype", "missing 'dtype'" },
        { "missing shape", "missing 'shape'" },
        { "missing data_offsets", "missing 'data_offsets'" },
        { "unknown dtype", "unknown dtype 'F17'" },
        { "lower-case dtype", "unknown dtype 'f32'" },
        { "sub-byte dtype", "unknown dtype 'F4'" },
        { "dtype is a number", "dtype that is not a string" },
        { "shape is a number", "shape that is not an array" },
        { "negative dimension", "not a non-negative integer" },
        { "fractional dimension", "not a non-negative integer" },
        { "dimension with exponent", "not a non-negative integer" },
        { "dimension is a string", "not a non-negative integer" },
        { "dimension beyond 2^63", "not a non-negative integer" },
        { "one offset", "two non-negative integers" },
        { "three offsets", "two non-negative integers" },
        { "negative offset", "two non-negative integers" },
        { "fractional offset", "two non-negative integers" },
        { "offset beyond 2^64", "two non-negative integers" },
        { "offsets not an array", "two non-negative integers" },
        { "end before begin", "end comes before the begin" },
        { "size does not match shape", "needs 12 bytes" },
        { "shape overflows", "overflows" },
        { "overlapping tensors", "overlap" },
        { "identical ranges", "overlap" },
        { "gap between tensors", "gap of 4 bytes" },
        { "gap before the first tensor", "gap of 4 bytes" },
        { "bytes after the last tensor", "4 unused bytes" },
        { "data but no tensors", "8 unused bytes" },
        { "offsets beyond the file", "beyond the end of the file" },
        { "metadata is an array", "not a map of strings to strings" },
        { "metadata value is a number", "not a map of strings to strings" },
        { "metadata value is null", "not a map of strings to strings" },
        { "duplicate tensor", "the key 't' twice" },
        { "duplicate tensor, escaped", "the key 't' twice" },
        { "duplicate metadata", "the key '__metadata__' twice" },
        { "duplicate metadata key", "the key 'k' twice" },
        { "duplicate field", "the key 'dtype' twice" },
        { "too deeply nested", "not valid JSON" },
    };

    internal static byte[] Malformed(string name) => name switch
    {
        "empty file" => [],
        "three bytes" => [1, 2, 3],
        "header length 200 MB" => Build("{}", [], headerLength: 200_000_000),
        "header length 2^64 - 1" => Build("{}", [], headerLength: ulong.MaxValue),
        "header length past the end" => Build("{}", new byte[16], headerLength: 1000),
        "header not UTF-8" => BuildRaw([.. "{\"t"u8, 0xFF, .. "\":"u8, .. Encoding.ASCII.GetBytes(F32x1), (byte)'}'], new byte[4]),
        "byte-order mark" => BuildRaw([0xEF, 0xBB, 0xBF, .. "{}"u8], []),
        "truncated JSON" => Build("{\"t\":" + F32x1, new byte[4]),
        "trailing garbage after JSON" => Build("{\"t\":" + F32x1 + "} x", new byte[4]),
        "comment in JSON" => Build("{/* c */\"t\":" + F32x1 + "}", new byte[4]),
        "header is an array" => Build("[1,2,3]", []),
        "header is a string" => Build("\"hello\"", []),
        "entry is an array" => Build("{\"t\":[1]}", []),
        "missing dtype" => Build("{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[4]),
        "missing shape" => Build("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", new byte[4]),
        "missing data_offsets" => Build("{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", new byte[4]),
        "unknown dtype" => Entry("\"F17\"", "[1]", "[0,4]", 4),
        "lower-case dtype" => Entry("\"f32\"", "[1]", "[0,4]", 4),
        "sub-byte dtype" => Entry("\"F4\"", "[2]", "[0,1]", 1),
        "dtype is a number" => Entry("4", "[1]", "[0,4]", 4),
        "shape is a number" => Entry("\"F32\"", "1", "[0,4]", 4),
        "negative dimension" => Entry("\"F32\"", "[-1]", "[0,4]", 4),
        "fractional dimension" => Entry("\"F32\"", "[1.5]", "[0,4]", 4),
        "dimension with exponent" => Entry("\"F32\"", "[1e0]", "[0,4]", 4),
        "dimension is a string" => Entry("\"F32\"", "[\"1\"]", "[0,4]", 4),
        "dimension beyond 2^63" => Entry("\"F32\"", "[9223372036854775808]", "[0,4]", 4),
        "one offset" => Entry("\"F32\"", "[1]", "[4]", 4),
        "three offsets" => Entry("\"F32\"", "[1]", "[0,4,4]", 4),
        "negative offset" => Entry("\"F32\"", "[1]", "[-4,0]", 4),
        "fractional offset" => Entry("\"F32\"", "[1]", "[0,4.0]", 4),
        "offset beyond 2^64" => Entry("\"F32\"", "[1]", "[0,18446744073709551620]", 4),
        "offsets not an array" => Entry("\"F32\"", "[1]", "{\"begin\":0,\"end\":4}", 4),
        "end before begin" => Entry("\"F32\"", "[1]", "[4,0]", 4),
        "size does not match shape" => Entry("\"F32\"", "[3]", "[0,8]", 8),
        "shape overflows" => Entry("\"F32\"", "[4294967296,4294967296,4294967296]", "[0,0]", 0),
        "overlapping tensors" => Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", new byte[12]),
        "identical ranges" => Build("{\"a\":" + F32x1 + ",\"b\":" + F32x1 + "}", new byte[4]),
        "gap between tensors" => Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", new byte[12]),
        "gap before the first tensor" => Entry("\"F32\"", "[1]", "[4,8]", 8),
        "bytes after the last tensor" => Entry("\"F32\"", "[1]", "[0,4]", 8),
        "data but no tensors" => Build("{}", new byte[8]),
        "offsets beyond the file" => Entry("\"F32\"", "[4]", "[0,16]", 8),
        "metadata is an array" => Build("{\"__metadata__\":[\"a\"]}", []),
        "metadata value is a number" => Build("{\"__metadata__\":{\"a\":1}}", []),
        "metadata value is null" => Build("{\"__metadata__\":{\"a\":null}}", []),
        "duplicate tensor" => Build("{\"t\":" + F32x1 + ",\"t\":" + F32x1 + "}", new byte[4]),
        "duplicate tensor, escaped" => Build("{\"t\":" + F32x1 + ",\"\\u0074\":" + F32x1 + "}", new byte[4]),
        "duplicate metadata" => Build("{\"__metadata__\":{},\"__metadata__\":{}}", []),
        "duplicate metadata key" => Build("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", []),
        "duplicate field" => Build("{\"t\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[4]),
        "too deeply nested" => Build("{\"t\":" + new string('[', 100) + new string(']', 100) + "}", []),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, null),
    };

    /// <summary>A file with one tensor 't' described by the given JSON pieces, and <paramref name="dataBytes"/> bytes of data.</summary>
    private static byte[] Entry(string dtype, string shape, string offsets, int dataBytes) =>
        Build($"{{\"t\":{{\"dtype\":{dtype},\"shape\":{shape},\"data_offsets\":{offsets}}}}}", new byte[dataBytes]);

    [Theory]
    [MemberData(nameof(MalformedCases))]
    public void Malformed_file_is_rejected_naming_the_file_and_the_problem(string name, string word)
    {
        string path = WriteFile("bad.safetensors", Malformed(name));
        var e = Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Contains(word, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Open_fails_for_a_missing_file_with_an_io_error_naming_it()
    {
        string path = PathOf("nowhere.safetensors");
        var e = Assert.Throws<FileNotFoundException>(() => SafeTensorsFile.Open(path));
        Assert.Contains(path, e.Message);
    }

    [Theory]
    [InlineData("{\"__metadata__\":null}", 0)]                                                        // serde reads null as no metadata
    [InlineData("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":[1,{}]}}", 4)] // unknown fields are ignored
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},\"b\":{\"dtype\":\"U8\",\"shape\":[0,5],\"data_offsets\":[0,0]}}", 0)]
    [InlineData("  {\"t\":{\"data_offsets\":[0,2],\"shape\":[],\"dtype\":\"BF16\"}}\t\n", 2)]                      // any whitespace, any field order
    [InlineData("{\"z\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]},\"y\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 2)] // any key order
    public void Unusual_but_valid_headers_are_accepted(string json, int dataBytes)
    {
        string path = WriteFile("odd.safetensors", Build(json, new byte[dataBytes], pad: false));
        using var file = SafeTensorsFile.Open(path);
        foreach (var t in file.Tensors) Assert.Equal(t.ByteCount, file.ReadBytes(t.Name).Length);
        Assert.Equal(dataBytes, file.Tensors.Sum(t => t.ByteCount));
    }

    // ---- reading into tensors -------------------------------------------------------------------------

    [Fact]
    public void Reading_checks_shape_dtype_and_name()
    {
        using var cpu = TestUtil.Cpu();
        string path = PathOf("checks.safetensors");
        new SafeTensorsWriter()
            .Add("x", new float[6], new Shape(2, 3))
            .Add("labels", new[] { 1, 2 })
            .Add("step", new long[] { 3 })
            .Write(path);
        using var file = SafeTensorsFile.Open(path);

        using var wrongShape = cpu.Allocate(new Shape(3, 2), MemoryTag.Parameters);
        var e = Assert.Throws<InvalidDataException>(() => file.ReadInto("x", wrongShape));
        Assert.Equal($"{path}: tensor 'x' has shape (2, 3) in the file but (3, 2) here", e.Message);

        using var wrongRank = cpu.Allocate(new Shape(6), MemoryTag.Parameters);
        e = Assert.Throws<InvalidDataException>(() => file.ReadInto("x", wrongRank));
        Assert.EndsWith("tensor 'x' has shape (2, 3) in the file but (6) here", e.Message);

        using var floats = cpu.Allocate(new Shape(2), MemoryTag.Parameters);
        e = Assert.Throws<InvalidDataException>(() => file.ReadInto("labels", floats));
        Assert.Contains("tensor 'labels' is I32 in the file and cannot be read into a Float32 tensor", e.Message);
        using var ints = cpu.Allocate(new Shape(2, 3), MemoryTag.Parameters, DType.Int32);
        e = Assert.Throws<InvalidDataException>(() => file.ReadInto("x", ints));
        Assert.Contains("is F32 in the file and cannot be read into a Int32 tensor", e.Message);

        e = Assert.Throws<InvalidDataException>(() => file.ReadFloats("labels"));
        Assert.Contains("only F32, F16 and BF16", e.Message);
        e = Assert.Throws<InvalidDataException>(() => file.ReadInts("x"));
        Assert.Contains("tensor 'x' is F32 in the file, not I32", e.Message);
        e = Assert.Throws<InvalidDataException>(() => file.ReadLongs("labels"));
        Assert.Contains("not I64", e.Message);
        e = Assert.Throws<InvalidDataException>(() => file.ReadBytes("y"));
        Assert.Equal($"{path}: there is no tensor 'y' in the file", e.Message);
        Assert.Throws<InvalidDataException>(() => file.ReadInto("y", floats));
    }

    [Fact]
    public void A_file_truncated_after_opening_is_reported_not_misread()
    {
        string path = PathOf("shrinks.safetensors");
        new SafeTensorsWriter().Add("a", new float[100]).Write(path);
        using var file = SafeTensorsFile.Open(path);
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete))
            stream.SetLength(stream.Length - 10);
        var e = Assert.Throws<InvalidDataException>(() => file.ReadFloats("a"));
        Assert.Contains("the file ended while reading tensor 'a'", e.Message);
    }

    // ---- writer arguments ----------------------------------------------------------------------------

    [Fact]
    public void Writer_rejects_bad_names_and_shapes()
    {
        var w = new SafeTensorsWriter().Add("a", new[] { 1f });
        Assert.Contains("added twice", Assert.Throws<ArgumentException>(() => w.Add("a", new[] { 2 })).Message);
        Assert.Throws<ArgumentException>(() => w.Add("", new[] { 1f }));
        Assert.Throws<ArgumentNullException>(() => w.Add(null!, new[] { 1f }));
        Assert.Contains("reserved", Assert.Throws<ArgumentException>(() => w.Add("__metadata__", new[] { 1f })).Message);
        Assert.Contains("needs 6 elements", Assert.Throws<ArgumentException>(() => w.Add("b", new float[5], new Shape(2, 3))).Message);
        Assert.Contains("whole number of F16", Assert.Throws<ArgumentException>(() => w.Add("c", new byte[5], SafeTensorDType.F16)).Message);
        Assert.Throws<ArgumentException>(() => w.Add("d", new byte[6], SafeTensorDType.F16, new Shape(2)));
        Assert.Contains("added twice", Assert.Throws<ArgumentException>(() => w.AddMetadata("k", "1").AddMetadata("k", "2")).Message);
        using var cpu = TestUtil.Cpu();
        var t = cpu.Allocate(new Shape(2), MemoryTag.Parameters);
        t.Dispose();
        Assert.Contains("disposed", Assert.Throws<ArgumentException>(() => w.Add("e", t)).Message);
        Assert.Equal(1, w.Count);                                               // nothing rejected was added
        Assert.Throws<ArgumentException>(() => w.Write(""));
    }

    // ---- atomic replacement -----------------------------------------------------------------------------

    [Fact]
    public void A_write_that_fails_midway_leaves_the_old_file_and_no_temporary()
    {
        string path = PathOf("checkpoint.safetensors");
        new SafeTensorsWriter().Add("old", new[] { 1f, 2f }).AddMetadata("step", "100").Write(path);
        byte[] old = File.ReadAllBytes(path);

        // A device lost in the middle of saving: downloads fail after the second one.
        int downloads = 0;
        bool Fail() => ++downloads > 2;
        using var a = FlakyStorage.Tensor(10, Fail);
        using var b = FlakyStorage.Tensor((1 << 20) + 5, Fail);                   // two chunks: the second download fails
        var writer = new SafeTensorsWriter().Add("a", a).Add("b", b).Add("c", new float[1000]).AddMetadata("step", "200");
        var e = Assert.Throws<IOException>(() => writer.Write(path));
        Assert.Equal("device lost", e.Message);
        Assert.Equal(3, downloads);                                              // it did fail midway, after writing data
        Assert.Equal(old, File.ReadAllBytes(path));
        Assert.False(File.Exists(path + ".tmp"));
        Assert.Equal(new[] { "checkpoint.safetensors" }, Directory.GetFiles(_temp).Select(Path.GetFileName));

        // A stale temporary file from a crash does not get in the way of the next write.
        File.WriteAllText(path + ".tmp", "left behind by a crash");
        new SafeTensorsWriter().Add("new", new[] { 3f }).Write(path);
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(new[] { 3f }, file.ReadFloats("new"));
        Assert.False(File.Exists(path + ".tmp"));
    }

    [Fact]
    public void A_write_to_a_missing_directory_throws_and_leaves_nothing()
    {
        string path = Path.Combine(_temp, "missing", "x.safetensors");
        Assert.Throws<DirectoryNotFoundException>(() => new SafeTensorsWriter().Add("a", new[] { 1f }).Write(path));
        Assert.Empty(Directory.GetFileSystemEntries(_temp));
    }


    // ---- fuzz ---------------------------------------------------------------------------------------------

    private const int FuzzInputs = 5000;
    private const int FuzzSeed = 20240611;

    /// <summary>Three small valid files: a Flora checkpoint, half-precision and byte types, empty and scalar tensors.</summary>
    private byte[][] FuzzSeeds()
    {
        var rng = new Random(1);
        float[] Floats(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        byte[] Bytes(int n) { var b = new byte[n]; rng.NextBytes(b); return b; }
        var writers = new[]
        {
            new SafeTensorsWriter()
                .Add("layer.weight", Floats(12), new Shape(3, 4))
                .Add("layer.bias", Floats(4))
                .Add("labels", new[] { 3, 1, 4, 1, 5 })
                .Add("step", new long[] { 12 }, new Shape())
                .AddMetadata("format", "flora")
                .AddMetadata("step", "12"),
            new SafeTensorsWriter()
                .Add("w", Bytes(12), SafeTensorDType.F16, new Shape(2, 3))
                .Add("s", Bytes(8), SafeTensorDType.BF16)
                .Add("mask", new byte[] { 1, 0, 1 }, SafeTensorDType.Bool)
                .Add("u", Bytes(5))
                .Add("d", Bytes(16), SafeTensorDType.F64),
            new SafeTensorsWriter()
                .Add("empty", Array.Empty<float>(), new Shape(0, 3))
                .Add("x", new[] { 2.5f }, new Shape())
                .Add("ids", new long[] { 1, -2, 3 })
                .Add("none", Array.Empty<byte>(), SafeTensorDType.I8)
                .AddMetadata("note", "ünïcödé ✓"),
        };
        return writers.Select((w, i) =>
        {
            string path = PathOf($"seed{i}.safetensors");
            w.Write(path);
            return File.ReadAllBytes(path);
        }).ToArray();
    }

    [Fact]
    public async Task Fuzz_every_mutated_file_is_read_completely_or_rejected_with_invalid_data()
    {
        var seeds = FuzzSeeds();
        using var cpu = TestUtil.Cpu();
        string path = PathOf("fuzz.safetensors");
        int accepted = 0, rejected = 0;
        long maxAllocated = 0;
        double maxMilliseconds = 0;
        var failures = new List<string>();
        var reasons = new Dictionary<string, int>();
        var byKind = new Dictionary<string, (int Accepted, int Rejected)>();

        var run = Task.Run(() =>
        {
            var rng = new Random(FuzzSeed);
            for (int i = 0; i < FuzzInputs; i++)
            {
                var kinds = new List<string>();
                byte[] input = Mutate(seeds[rng.Next(seeds.Length)], rng, kinds);
                File.WriteAllBytes(path, input);
                long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
                var clock = Stopwatch.StartNew();
                bool ok = false;
                try
                {
                    SafeTensorsFile file;
                    try
                    {
                        file = SafeTensorsFile.Open(path);
                    }
                    catch (InvalidDataException e)
                    {
                        rejected++;
                        string reason = Regex.Replace(Regex.Replace(e.Message[(path.Length + 2)..], "'[^']*'", "'_'"), @"-?\d+", "N");
                        reason = reason.Length > 70 ? reason[..70] : reason;
                        reasons[reason] = reasons.GetValueOrDefault(reason) + 1;
                        continue;
                    }
                    // An accepted header must be readable in full: no reading may fail afterwards.
                    using (file) ReadEverything(file, cpu);
                    accepted++;
                    ok = true;
                }
                catch (Exception e)
                {
                    failures.Add($"input {i} ({string.Join(", ", kinds)}): {e.GetType().Name}: {e.Message}; bytes {Convert.ToHexString(input.AsSpan(0, Math.Min(input.Length, 400)))}");
                }
                finally
                {
                    long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
                    maxAllocated = Math.Max(maxAllocated, allocated);
                    maxMilliseconds = Math.Max(maxMilliseconds, clock.Elapsed.TotalMilliseconds);
                    if (allocated > 16 << 20) failures.Add($"input {i} ({string.Join(", ", kinds)}): allocated {allocated:N0} bytes for a file of {input.Length} bytes");
                    foreach (string k in kinds.Distinct())
                    {
                        var (a, r) = byKind.GetValueOrDefault(k);
                        byKind[k] = ok ? (a + 1, r) : (a, r + 1);
                    }
                }
            }
        });
        Assert.True(await Task.WhenAny(run, Task.Delay(TimeSpan.FromMinutes(3))) == run, "the fuzz run did not finish in 3 minutes: some input hangs the reader");
        await run;

        output.WriteLine($"fuzz: {FuzzInputs} inputs tried (seed {FuzzSeed}, 3 valid files, 1-3 mutations each): {accepted} accepted, {rejected} rejected with InvalidDataException, {failures.Count} failures");
        output.WriteLine($"largest managed allocation for one input: {maxAllocated:N0} bytes; slowest input: {maxMilliseconds:F1} ms");
        output.WriteLine("by mutation (inputs containing it: accepted / rejected):");
        foreach (var (k, (a, r)) in byKind.OrderBy(p => p.Key, StringComparer.Ordinal)) output.WriteLine($"  {k,-12} {a,5} / {r,5}");
        output.WriteLine("most frequent rejections:");
        foreach (var (reason, n) in reasons.OrderByDescending(p => p.Value).Take(15)) output.WriteLine($"  {n,5}  {reason}");
        foreach (string f in failures.Take(20)) output.WriteLine("FAILURE " + f);

        Assert.True(failures.Count == 0, $"{failures.Count} fuzz inputs misbehaved; first: {failures.FirstOrDefault()}");
        Assert.Equal(FuzzInputs, accepted + rejected);
        // Both outcomes are common, so the fuzz reaches the readers of accepted files as well as every check.
        Assert.True(accepted > FuzzInputs / 20, $"only {accepted} inputs accepted");
        Assert.True(rejected > FuzzInputs / 2, $"only {rejected} inputs rejected");
    }

    /// <summary>Reads every tensor in every way its dtype allows, and checks that the tensors cover the data.</summary>
    private static void ReadEverything(SafeTensorsFile file, IBackend cpu)
    {
        long total = 0;
        foreach (var t in file.Tensors)
        {
            total += file.ReadBytes(t.Name).Length;
            switch (t.DType)
            {
                case SafeTensorDType.F32 or SafeTensorDType.F16 or SafeTensorDType.BF16:
                    if (file.ReadFloats(t.Name).Length != t.ElementCount) throw new InvalidOperationException("wrong float count");
                    break;
                case SafeTensorDType.I32:
                    if (file.ReadInts(t.Name).Length != t.ElementCount) throw new InvalidOperationException("wrong int count");
                    break;
                case SafeTensorDType.I64:
                    if (file.ReadLongs(t.Name).Length != t.ElementCount) throw new InvalidOperationException("wrong long count");
                    break;
            }
            bool floating = t.DType is SafeTensorDType.F32 or SafeTensorDType.F16 or SafeTensorDType.BF16;
            if ((floating || t.DType == SafeTensorDType.I32) && t.ElementCount <= 1 << 16 && t.Shape.Count <= 8 && t.Shape.All(d => d <= 1 << 16))
            {
                using var destination = cpu.Allocate(new Shape(t.Shape.Select(d => (int)d).ToArray()), MemoryTag.Scratch, floating ? DType.Float32 : DType.Int32);
                file.ReadInto(t.Name, destination);
            }
        }
        if (total != file.FileLength - file.DataStart)
            throw new InvalidOperationException($"the accepted tensors hold {total} bytes of {file.FileLength - file.DataStart}");
    }

    private static readonly string[] FuzzNumbers =
    [
        "0", "1", "2", "3", "4", "7", "8", "12", "16", "24", "-1", "-8", "-0", "1.5", "4.0", "1e3", "0x10", "01",
        "2147483648", "4294967296", "9223372036854775807", "9223372036854775808", "18446744073709551615",
        "18446744073709551616", "99999999999999999999999999", "1e999",
    ];

    private static readonly string[] FuzzDTypes =
        [.. Enum.GetValues<SafeTensorDType>().Select(d => d.Code()), "F17", "f32", "", "F4", "F6_E2M3", "float32", "F 32", "F32\u0000"];

    private static readonly string[] FuzzValues =
        ["1", "-3", "null", "true", "[]", "{}", "[0,4]", "[1,2,3]", "\"x\"", "\"F32\"", "\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"__metadata__\"", "{\"a\":\"b\"}"];

    private const string FuzzChars = "{}[],:\"-0123456789.e \\tnul\u00FF";

    private static readonly Regex NumberToken = new(@"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?!\w)", RegexOptions.Compiled);
    private static readonly Regex DTypeToken = new("\"(?:BOOL|U8|I8|F8_E5M2|F8_E4M3|F8_E8M0|I16|U16|F16|BF16|I32|U32|F32|C64|F64|I64|U64)\"", RegexOptions.Compiled);
    private static readonly Regex StringToken = new("\"(?:[^\"\\\\]|\\\\.)*\"", RegexOptions.Compiled);

    /// <summary>One to three random mutations of <paramref name="input"/> (one in half the cases); their names go to <paramref name="kinds"/>.</summary>
    private static byte[] Mutate(byte[] input, Random rng, List<string> kinds)
    {
        byte[] bytes = (byte[])input.Clone();
        int steps = rng.Next(6) switch { < 3 => 1, < 5 => 2, _ => 3 };
        for (int s = 0; s < steps; s++)
        {
            bool hasHeader = bytes.Length >= 8 && BinaryPrimitives.ReadUInt64LittleEndian(bytes) <= (ulong)(bytes.Length - 8);
            int n = hasHeader ? (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes) : 0;
            int kind = rng.Next(10);
            if (kind >= 6 && !hasHeader) kind = rng.Next(6);
            switch (kind)
            {
                case 0 when bytes.Length >= 8:
                    kinds.Add("length-bit");
                    bytes[rng.Next(8)] ^= (byte)(1 << rng.Next(8));
                    break;
                case 1 when hasHeader && n > 0:
                    kinds.Add("header-bit");
                    bytes[8 + rng.Next(n)] ^= (byte)(1 << rng.Next(8));
                    break;
                case 2 when hasHeader && bytes.Length > 8 + n:
                    kinds.Add("data-bit");
                    bytes[8 + n + rng.Next(bytes.Length - 8 - n)] ^= (byte)(1 << rng.Next(8));
                    break;
                case 3 when bytes.Length > 0:
                    kinds.Add("truncate");
                    bytes = bytes[..rng.Next(bytes.Length)];
                    break;
                case 4:
                {
                    kinds.Add("append");
                    var extra = new byte[1 + rng.Next(64)];
                    switch (rng.Next(3))
                    {
                        case 0: rng.NextBytes(extra); break;
                        case 1: extra.AsSpan().Fill((byte)' '); break;
                        default: break;                                         // zeros
                    }
                    bytes = [.. bytes, .. extra];
                    break;
                }
                case 5 when bytes.Length >= 8:
                {
                    kinds.Add("set-length");
                    ulong[] lengths = [0, 1, 2, 7, 8, (ulong)n + 1, (ulong)Math.Max(n - 1, 0), (ulong)n + 8, (ulong)bytes.Length - 8,
                        (ulong)bytes.Length - 7, 1UL << 32, 100_000_000, 100_000_001, ulong.MaxValue, (ulong)rng.NextInt64()];
                    BinaryPrimitives.WriteUInt64LittleEndian(bytes, lengths[rng.Next(lengths.Length)]);
                    break;
                }
                case >= 6:
                    bytes = EditJson(bytes, n, kind, rng, kinds);
                    break;
                default:
                    kinds.Add("append");
                    bytes = [.. bytes, (byte)rng.Next(256)];
                    break;
            }
        }
        return bytes;
    }

    /// <summary>A textual edit of the header: a number, a dtype, a string or a few characters; the header length is usually fixed up after it.</summary>
    private static byte[] EditJson(byte[] bytes, int n, int kind, Random rng, List<string> kinds)
    {
        string json = Encoding.Latin1.GetString(bytes, 8, n).TrimEnd(' ');
        byte[] data = bytes[(8 + n)..];
        string Replace(Regex token, Func<string, string> by)
        {
            var matches = token.Matches(json);
            if (matches.Count == 0) return json;
            var m = matches[rng.Next(matches.Count)];
            return json[..m.Index] + by(m.Value) + json[(m.Index + m.Length)..];
        }
        switch (kind)
        {
            case 6:
                kinds.Add("json-number");
                json = Replace(NumberToken, old => rng.Next(3) switch
                {
                    0 when long.TryParse(old, out long v) => (v + rng.Next(-4, 5)).ToString(),
                    1 when long.TryParse(old, out long v) => (v * 2).ToString(),
                    _ => FuzzNumbers[rng.Next(FuzzNumbers.Length)],
                });
                break;
            case 7:
                kinds.Add("json-dtype");
                json = Replace(DTypeToken, _ => "\"" + FuzzDTypes[rng.Next(FuzzDTypes.Length)] + "\"");
                break;
            case 8:
            {
                kinds.Add("json-string");
                var strings = StringToken.Matches(json);
                json = Replace(StringToken, _ => rng.Next(2) == 0 && strings.Count > 0
                    ? strings[rng.Next(strings.Count)].Value                    // often a duplicate key
                    : FuzzValues[rng.Next(FuzzValues.Length)]);
                break;
            }
            default:
            {
                kinds.Add("json-chars");
                int at = json.Length == 0 ? 0 : rng.Next(json.Length);
                if (rng.Next(2) == 0 && json.Length > 0)
                    json = json.Remove(at, Math.Min(1 + rng.Next(8), json.Length - at));
                else
                    json = json.Insert(at, new string(Enumerable.Range(0, 1 + rng.Next(3)).Select(_ => FuzzChars[rng.Next(FuzzChars.Length)]).ToArray()));
                break;
            }
        }
        int fix = rng.Next(10);
        byte[] header = Encoding.Latin1.GetBytes(json);
        return BuildRaw(header, data, pad: fix < 8, headerLength: fix == 9 ? (ulong)n : null);
    }

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    /// <summary>Host memory whose reads throw once <c>fail</c> says so: a device lost in the middle of a save.</summary>
    private sealed class FlakyStorage(long bytes, Func<bool> fail) : Storage(new MemoryLedger(), MemoryTag.Parameters, bytes)
    {
        private readonly HostStorage _memory = new(new MemoryLedger(), MemoryTag.Parameters, bytes);

        public static Tensor Tensor(int count, Func<bool> fail) =>
            new(new FlakyStorage(count * 4L, fail), new Shape(count), DType.Float32, 0, ownsStorage: true);

        protected override IntPtr RawPointer => _memory.Pointer;
        public override bool IsHost => true;

        protected override void Read(long byteOffset, Span<byte> destination)
        {
            if (fail()) throw new IOException("device lost");
            _memory.CopyToHost(byteOffset, destination);
        }

        protected override void Write(ReadOnlySpan<byte> source, long byteOffset) => _memory.CopyFromHost(source, byteOffset);
        protected override void Release() => _memory.Dispose();
    }
}
