using System.Buffers.Binary;
using System.IO.Compression;
using Flora.Data;

namespace Flora.Tests.Data;

public sealed class FashionMnistTests : IDisposable
{
    private const string ImagesFile = "t10k-images-idx3-ubyte.gz";
    private const string LabelsFile = "t10k-labels-idx1-ubyte.gz";
    private const int Side = 28;

    /// <summary>The first 16 labels of the Fashion-MNIST test set, read once from the Debian package.</summary>
    private static readonly byte[] FirstLabels = { 9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5, 7, 3, 4, 1 };

    /// <summary>Sum of the pixel bytes of the first test image, read once from the Debian package.</summary>
    private const int FirstImageByteSum = 33456;

    private static readonly string SampleDirectory =
        Path.Combine(AppContext.BaseDirectory, "Data", "fashion-mnist-sample");

    private readonly string _temp = Directory.CreateTempSubdirectory("flora-mnist-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    // ---- The committed sample ----

    [Fact]
    public void Sample_HasSixteen28x28ImagesInTenClasses()
    {
        ImageDataset test = FashionMnist.LoadTest(SampleDirectory);

        Assert.Equal("test", test.Name);
        Assert.Equal(16, test.Count);
        Assert.Equal((Side, Side, Side * Side), (test.Rows, test.Cols, test.Features));
        Assert.Equal(16 * Side * Side, test.Pixels.Length);
        Assert.Equal(10, test.Classes);
    }

    [Fact]
    public void Sample_PixelsAreScaledToUnitRange()
    {
        float[] pixels = FashionMnist.LoadTest(SampleDirectory).Pixels;

        Assert.All(pixels, p => Assert.InRange(p, 0f, 1f));
        Assert.Equal(0f, pixels.Min());
        Assert.Equal(1f, pixels.Max());
    }

    [Fact]
    public void Sample_HasTheKnownFirstLabels()
    {
        Assert.Equal(FirstLabels, FashionMnist.LoadTest(SampleDirectory).Labels);
    }

    [Fact]
    public void Sample_FirstImageSumMatchesTheRawBytes()
    {
        byte[] raw = ReadGzip(Path.Combine(SampleDirectory, ImagesFile));
        int rawSum = raw.Skip(16).Take(Side * Side).Sum(b => b);

        float[] pixels = FashionMnist.LoadTest(SampleDirectory).Pixels;
        double loadedSum = pixels.Take(Side * Side).Sum(p => (double)p) * 255;

        Assert.Equal(FirstImageByteSum, rawSum);
        Assert.Equal(rawSum, loadedSum, precision: 2);
    }

    [Fact]
    public void Sample_TrainCopyLoadsAsTrain()
    {
        ImageDataset train = FashionMnist.LoadTrain(SampleDirectory);

        Assert.Equal("train", train.Name);
        Assert.Equal(FirstLabels, train.Labels);
        Assert.Equal(FashionMnist.LoadTest(SampleDirectory).Pixels, train.Pixels);
    }

    [Fact]
    public void Take_CopiesTheFirstExamples()
    {
        ImageDataset test = FashionMnist.LoadTest(SampleDirectory);

        ImageDataset first = test.Take(3);
        first.Pixels[0] = 42f;

        Assert.Equal(3, first.Count);
        Assert.Equal(FirstLabels[..3], first.Labels);
        Assert.Equal(3 * Side * Side, first.Pixels.Length);
        Assert.NotEqual(42f, test.Pixels[0]);
        Assert.Equal(16, test.Take(100).Count);
    }

    [Fact]
    public void IdxFile_ReadsUncompressedFilesAndSniffsGzipWithoutTheSuffix()
    {
        byte[] images = ReadGzip(Path.Combine(SampleDirectory, ImagesFile));
        string raw = Write("images-raw", images);
        string sniffed = Write("images-sniffed", File.ReadAllBytes(Path.Combine(SampleDirectory, ImagesFile)));

        var fromRaw = IdxFile.ReadImages(raw);
        var fromSniffed = IdxFile.ReadImages(sniffed);

        Assert.Equal((16, Side, Side), (fromRaw.Count, fromRaw.Rows, fromRaw.Cols));
        Assert.Equal(images[16..], fromRaw.Pixels);
        Assert.Equal(images[16..], fromSniffed.Pixels);
    }

    // ---- The real data set from the Debian package ----

    [Fact]
    public void RealTestSet_HasTenThousandExamples()
    {
        if (!Directory.Exists(FashionMnist.DefaultDirectory))
        {
            return; // dataset-fashion-mnist is not installed here
        }

        ImageDataset test = FashionMnist.LoadTest();

        Assert.Equal(10_000, test.Count);
        Assert.Equal((Side, Side), (test.Rows, test.Cols));
        Assert.Equal(FirstLabels, test.Labels[..16]);
        Assert.Equal(FirstImageByteSum, test.Pixels.Take(Side * Side).Sum(p => (double)p) * 255, precision: 2);
        Assert.Equal(Enumerable.Repeat(1000, 10), test.Labels.CountBy(l => l).OrderBy(g => g.Key).Select(g => g.Value));
    }

    // ---- Malformed files ----

    [Fact]
    public void WrongMagic_SaysWhatWasFoundAndExpected()
    {
        WriteSampleLabels();
        WriteGzip(ImagesFile, Idx(0x00000801, new[] { 16 }, new byte[16]));

        var e = Assert.Throws<DataFormatException>(() => FashionMnist.LoadTest(_temp));

        AssertMentions(e, ImagesFile, "magic", "0x00000801", "0x00000803");
    }

    [Fact]
    public void NotIdxAtAll_IsWrongMagic()
    {
        WriteGzip(ImagesFile, "PK\u0003\u0004 not an idx file"u8.ToArray());

        var e = Assert.Throws<DataFormatException>(() => IdxFile.ReadImages(Path.Combine(_temp, ImagesFile)));

        AssertMentions(e, ImagesFile, "magic", "not an IDX file");
    }

    [Fact]
    public void UnsupportedDataType_IsNamed()
    {
        WriteGzip(ImagesFile, Idx(0x00000D03, new[] { 1, 1, 1 }, new byte[4]));

        var e = Assert.Throws<DataFormatException>(() => IdxFile.ReadImages(Path.Combine(_temp, ImagesFile)));

        AssertMentions(e, ImagesFile, "data type 0x0D", "0x00000D03");
    }

    [Fact]
    public void NegativeDimension_IsAbsurd()
    {
        WriteGzip(ImagesFile, Idx(0x00000803, new[] { 2, -28, 28 }, Array.Empty<byte>()));

        var e = Assert.Throws<DataFormatException>(() => IdxFile.ReadImages(Path.Combine(_temp, ImagesFile)));

        AssertMentions(e, ImagesFile, "absurd", "-28");
    }

    [Fact]
    public void HugeDimensions_AreAbsurd()
    {
        WriteGzip(ImagesFile, Idx(0x00000803, new[] { int.MaxValue, 28, 28 }, Array.Empty<byte>()));

        var e = Assert.Throws<DataFormatException>(() => IdxFile.ReadImages(Path.Combine(_temp, ImagesFile)));

        AssertMentions(e, ImagesFile, "absurd", "2147483647 x 28 x 28");
    }

    [Fact]
    public void TruncatedImageData_SaysExpectedAndFoundBytes()
    {
        WriteSampleLabels();
        WriteGzip(ImagesFile, Idx(0x00000803, new[] { 16, Side, Side }, new byte[1000]));

        var e = Assert.Throws<DataFormatException>(() => FashionMnist.LoadTest(_temp));

        AssertMentions(e, ImagesFile, "truncated", "12544", "1000");
    }

    [Fact]
    public void LyingHugeCount_IsTruncatedNotAnOutOfMemory()
    {
        WriteGzip(ImagesFile, Idx(0x00000803, new[] { 2_000_000, Side, Side }, new byte[Side * Side]));

        var e = Assert.Throws<DataFormatException>(() => IdxFile.ReadImages(Path.Combine(_temp, ImagesFile)));

        AssertMentions(e, ImagesFile, "truncated", "1568000000", "found 784");
    }

    [Fact]
    public void TruncatedHeader_SaysExpectedAndFoundBytes()
    {
        WriteSampleLabels();
        WriteGzip(ImagesFile, Idx(0x00000803, new[] { 16, Side, Side }, Array.Empty<byte>())[..9]);

        var e = Assert.Throws<DataFormatException>(() => FashionMnist.LoadTest(_temp));

        AssertMentions(e, ImagesFile, "truncated header", "16", "9");
    }

    [Fact]
    public void WrongNumberOfDimensions_IsNamed()
    {
        WriteGzip(LabelsFile, Idx(0x00000803, new[] { 1, 1, 1 }, new byte[1]));

        var e = Assert.Throws<DataFormatException>(() => IdxFile.ReadLabels(Path.Combine(_temp, LabelsFile)));

        AssertMentions(e, LabelsFile, "dimensions", "found 3, expected 1");
    }

    [Fact]
    public void TrailingGarbage_IsReported()
    {
        WriteGzip(LabelsFile, Idx(0x00000801, new[] { 2 }, new byte[] { 1, 2, 3, 4, 5 }));

        var e = Assert.Throws<DataFormatException>(() => IdxFile.ReadLabels(Path.Combine(_temp, LabelsFile)));

        AssertMentions(e, LabelsFile, "trailing garbage", "3 unexpected bytes");
    }

    [Fact]
    public void TruncatedGzipStream_IsTruncatedData()
    {
        byte[] compressed = File.ReadAllBytes(Path.Combine(SampleDirectory, ImagesFile));
        Write(ImagesFile, compressed[..(compressed.Length / 2)]);

        var e = Assert.Throws<DataFormatException>(() => IdxFile.ReadImages(Path.Combine(_temp, ImagesFile)));

        AssertMentions(e, ImagesFile, "truncated data", "expected 12544 bytes");
    }

    [Fact]
    public void CountMismatch_NamesBothFilesAndCounts()
    {
        File.Copy(Path.Combine(SampleDirectory, ImagesFile), Path.Combine(_temp, ImagesFile));
        WriteGzip(LabelsFile, Idx(0x00000801, new[] { 15 }, FirstLabels[..15]));

        var e = Assert.Throws<DataFormatException>(() => FashionMnist.LoadTest(_temp));

        AssertMentions(e, ImagesFile, LabelsFile, "mismatch", "16 images", "15 labels");
    }

    [Fact]
    public void LabelOutOfRange_NamesTheFileAndIndex()
    {
        File.Copy(Path.Combine(SampleDirectory, ImagesFile), Path.Combine(_temp, ImagesFile));
        byte[] labels = (byte[])FirstLabels.Clone();
        labels[5] = 10;
        WriteGzip(LabelsFile, Idx(0x00000801, new[] { 16 }, labels));

        var e = Assert.Throws<DataFormatException>(() => FashionMnist.LoadTest(_temp));

        AssertMentions(e, LabelsFile, "label 10", "index 5", "out of range");
    }

    [Fact]
    public void GarbageWithGzName_IsCorruptGzip()
    {
        WriteSampleLabels();
        File.WriteAllBytes(Path.Combine(_temp, ImagesFile), "this is plain text, not gzip at all"u8.ToArray());

        var e = Assert.Throws<DataFormatException>(() => FashionMnist.LoadTest(_temp));

        AssertMentions(e, ImagesFile, "corrupt gzip");
    }

    [Fact]
    public void MissingFile_SaysHowToInstall()
    {
        WriteSampleLabels();

        var e = Assert.Throws<DataFormatException>(() => FashionMnist.LoadTest(_temp));

        AssertMentions(e, ImagesFile, "not found", "sudo apt-get install dataset-fashion-mnist", "--data DIR");
    }

    [Fact]
    public void MissingDirectory_SaysHowToInstall()
    {
        string missing = Path.Combine(_temp, "no-such-folder");

        var e = Assert.Throws<FloraException>(() => FashionMnist.LoadTrain(missing));

        AssertMentions(e, missing, "not found", "sudo apt-get install dataset-fashion-mnist", "--data DIR");
    }

    [Fact]
    public void IdxFile_MissingFile_IsNamed()
    {
        string missing = Path.Combine(_temp, "nothing.gz");

        var e = Assert.Throws<DataFormatException>(() => IdxFile.ReadLabels(missing));

        Assert.Equal(missing, e.Path);
        AssertMentions(e, missing, "not found");
    }

    // ---- Helpers ----

    private static void AssertMentions(Exception e, params string[] parts)
    {
        foreach (string part in parts)
        {
            Assert.Contains(part, e.Message);
        }
    }

    private static byte[] Idx(int magic, int[] sizes, byte[] data)
    {
        var bytes = new byte[4 + 4 * sizes.Length + data.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes, magic);
        for (int i = 0; i < sizes.Length; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + 4 * i), sizes[i]);
        }
        data.CopyTo(bytes, 4 + 4 * sizes.Length);
        return bytes;
    }

    private static byte[] ReadGzip(string path)
    {
        using var gzip = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        using var memory = new MemoryStream();
        gzip.CopyTo(memory);
        return memory.ToArray();
    }

    private string Write(string name, byte[] bytes)
    {
        string path = Path.Combine(_temp, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private void WriteGzip(string name, byte[] bytes)
    {
        using var file = File.Create(Path.Combine(_temp, name));
        using var gzip = new GZipStream(file, CompressionLevel.Fastest);
        gzip.Write(bytes);
    }

    private void WriteSampleLabels() =>
        File.Copy(Path.Combine(SampleDirectory, LabelsFile), Path.Combine(_temp, LabelsFile));
}
