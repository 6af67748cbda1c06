using System.Numerics.Tensors;

namespace Flora.Data;

/// <summary>A labelled set of same-sized greyscale images, held in memory.</summary>
public sealed class ImageDataset
{
    /// <summary>Creates a dataset, taking ownership of the arrays (they are not copied).</summary>
    /// <param name="name">A short name for messages and reports, such as "train".</param>
    /// <param name="count">The number of examples.</param>
    /// <param name="rows">The height of one image in pixels.</param>
    /// <param name="cols">The width of one image in pixels.</param>
    /// <param name="pixels"><paramref name="count"/> images of <paramref name="rows"/> x <paramref name="cols"/> pixels, row-major, in [0, 1].</param>
    /// <param name="labels">One class index per example, each below <paramref name="classes"/>.</param>
    /// <param name="classes">The number of classes.</param>
    /// <exception cref="ArgumentException">The sizes do not agree or a label is out of range.</exception>
    public ImageDataset(string name, int count, int rows, int cols, float[] pixels, byte[] labels, int classes)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(cols);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(classes);
        CheckLengths(count, (long)rows * cols, pixels, labels);
        CheckLabels(labels, classes);
        (Name, Count, Rows, Cols, Pixels, Labels, Classes) = (name, count, rows, cols, pixels, labels, classes);
    }

    /// <summary>A short name for messages and reports, such as "train" or "test".</summary>
    public string Name { get; }

    /// <summary>The number of examples.</summary>
    public int Count { get; }

    /// <summary>The height of one image in pixels.</summary>
    public int Rows { get; }

    /// <summary>The width of one image in pixels.</summary>
    public int Cols { get; }

    /// <summary>The number of pixels in one image: <see cref="Rows"/> * <see cref="Cols"/>.</summary>
    public int Features => Rows * Cols;

    /// <summary><see cref="Count"/> * <see cref="Features"/> pixels, one image after another, row-major, scaled to [0, 1].</summary>
    public float[] Pixels { get; }

    /// <summary>One class index per example, each below <see cref="Classes"/>.</summary>
    public byte[] Labels { get; }

    /// <summary>The number of classes.</summary>
    public int Classes { get; }

    /// <summary>Copies the first <paramref name="n"/> examples, for quick runs.</summary>
    /// <param name="n">How many examples to keep; more than <see cref="Count"/> keeps them all.</param>
    /// <returns>A new dataset with the same name, image size and classes.</returns>
    public ImageDataset Take(int n)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        n = Math.Min(n, Count);
        float[] pixels = Pixels.AsSpan(0, n * Features).ToArray();
        byte[] labels = Labels.AsSpan(0, n).ToArray();
        return new ImageDataset(Name, n, Rows, Cols, pixels, labels, Classes);
    }

    private static void CheckLengths(int count, long features, float[] pixels, byte[] labels)
    {
        if (pixels.Length != count * features)
        {
            throw new ArgumentException($"expected {count} x {features} pixels, got {pixels.Length}", nameof(pixels));
        }
        if (labels.Length != count)
        {
            throw new ArgumentException($"expected {count} labels, got {labels.Length}", nameof(labels));
        }
    }

    private static void CheckLabels(byte[] labels, int classes)
    {
        int bad = classes > byte.MaxValue ? -1 : labels.AsSpan().IndexOfAnyInRange((byte)classes, byte.MaxValue);
        if (bad >= 0)
        {
            throw new ArgumentException($"label {labels[bad]} at index {bad} is not below {classes}", nameof(labels));
        }
    }
}

/// <summary>
/// Loads Fashion-MNIST (Zalando's 28 x 28 greyscale clothing images in 10 classes) from the
/// gzip-compressed IDX files that the Debian package <c>dataset-fashion-mnist</c> installs.
/// </summary>
public static class FashionMnist
{
    /// <summary>Where the Debian package installs the files.</summary>
    public const string DefaultDirectory = "/usr/share/datasets/fashion-mnist";

    /// <summary>The Debian package that provides the files.</summary>
    public const string DebianPackage = "dataset-fashion-mnist";

    /// <summary>The names of the 10 classes, indexed by label.</summary>
    public static readonly string[] ClassNames =
    {
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    };

    private const string InstallHint =
        $"install the Debian package with `sudo apt-get install {DebianPackage}` or pass `--data DIR`";

    /// <summary>Loads the 60,000 training examples (files <c>train-*-ubyte[.gz]</c>).</summary>
    /// <param name="directory">The folder holding the files; <see cref="DefaultDirectory"/> when null.</param>
    /// <exception cref="FloraException">A file or the folder is missing, or the data is malformed.</exception>
    public static ImageDataset LoadTrain(string? directory = null) => Load(directory, "train", "train");

    /// <summary>Loads the 10,000 test examples (files <c>t10k-*-ubyte[.gz]</c>).</summary>
    /// <param name="directory">The folder holding the files; <see cref="DefaultDirectory"/> when null.</param>
    /// <exception cref="FloraException">A file or the folder is missing, or the data is malformed.</exception>
    public static ImageDataset LoadTest(string? directory = null) => Load(directory, "t10k", "test");

    private static ImageDataset Load(string? directory, string prefix, string name)
    {
        string folder = directory ?? DefaultDirectory;
        if (!Directory.Exists(folder))
        {
            throw new FloraException($"{folder}: Fashion-MNIST directory not found; {InstallHint}");
        }
        string imagesPath = FindFile(folder, $"{prefix}-images-idx3-ubyte");
        string labelsPath = FindFile(folder, $"{prefix}-labels-idx1-ubyte");
        byte[] labels = IdxFile.ReadLabels(labelsPath);
        var (count, rows, cols, pixels) = IdxFile.ReadImages(imagesPath);
        CheckCounts(imagesPath, count, labelsPath, labels.Length);
        CheckLabels(labelsPath, labels);
        return new ImageDataset(name, count, rows, cols, ToUnitRange(pixels), labels, ClassNames.Length);
    }

    private static string FindFile(string folder, string baseName)
    {
        string compressed = Path.Combine(folder, baseName + ".gz");
        string raw = Path.Combine(folder, baseName);
        if (File.Exists(compressed))
        {
            return compressed;
        }
        if (File.Exists(raw))
        {
            return raw;
        }
        throw new DataFormatException(compressed, $"file not found (nor {baseName} without .gz); {InstallHint}");
    }

    private static void CheckCounts(string imagesPath, int images, string labelsPath, int labels)
    {
        if (images != labels)
        {
            throw new DataFormatException(imagesPath,
                $"count mismatch: {images} images here but {labels} labels in {labelsPath}");
        }
    }

    private static void CheckLabels(string labelsPath, byte[] labels)
    {
        int bad = labels.AsSpan().IndexOfAnyInRange((byte)ClassNames.Length, byte.MaxValue);
        if (bad >= 0)
        {
            throw new DataFormatException(labelsPath,
                $"label {labels[bad]} at index {bad} is out of range: there are only {ClassNames.Length} classes (0-{ClassNames.Length - 1})");
        }
    }

    /// <summary>Converts pixel bytes 0..255 to floats 0..1 with vectorised primitives.</summary>
    private static float[] ToUnitRange(byte[] bytes)
    {
        var pixels = new float[bytes.Length];
        TensorPrimitives.ConvertTruncating<byte, float>(bytes, pixels);
        TensorPrimitives.Divide(pixels, 255f, pixels);
        return pixels;
    }
}
