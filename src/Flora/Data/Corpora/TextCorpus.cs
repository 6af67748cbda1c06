using Flora.Reporting;
using System.Text;

namespace Flora.Data.Corpora;

/// <summary>The three parts of a <see cref="TextCorpus"/>.</summary>
public enum CorpusSplit
{
    /// <summary>What the model trains on.</summary>
    Train,
    /// <summary>Held out from training; the split a run evaluates as it trains.</summary>
    Validation,
    /// <summary>Held out from training and from a run's evaluations; for the final result.</summary>
    Test,
}

/// <summary>What a corpus is split into: paragraphs (the chapters of the embedded corpus) or single lines.</summary>
public enum CorpusUnit
{
    /// <summary>Runs of non-blank lines between blank lines; used when there are at least <see cref="TextCorpus.Period"/> of them.</summary>
    Paragraph,
    /// <summary>Single non-blank lines; used for a text with fewer paragraphs.</summary>
    Line,
}

/// <summary>The size of one split of a <see cref="TextCorpus"/>.</summary>
/// <param name="Units">Paragraphs (chapters, for the embedded corpus) or lines, whichever the corpus was split into.</param>
/// <param name="Lines">Non-blank lines (verses, for the embedded corpus).</param>
/// <param name="Characters">The length of the split's text in UTF-16 code units, separators included.</param>
public sealed record SplitSize(int Units, int Lines, int Characters);

/// <summary>
/// A text for language-model training, split deterministically into training, validation and test text.
/// <para>
/// The rule: the text is cut into units, paragraphs (runs of non-blank lines between blank lines) when there
/// are at least <see cref="Period"/> of them, otherwise single non-blank lines. Unit <c>i</c> (from 0, in file
/// order) goes to validation when <c>i % 20 == 19</c>, to test when <c>i % 20 == 9</c>, and to training
/// otherwise: 90 % / 5 % / 5 % of the units, spread evenly through the text, never depending on a seed. Each
/// split's text is its units in order, lines joined by "\n", paragraphs separated by one blank line, ending with
/// "\n". Line endings are normalised to "\n", trailing white space of each line is removed, a leading byte-order
/// mark is dropped; nothing else is changed.
/// </para>
/// </summary>
public sealed class TextCorpus
{
    /// <summary>One unit in every <see cref="Period"/> goes to validation, one to test.</summary>
    public const int Period = 20;

    /// <summary>Unit <c>i</c> goes to validation when <c>i % Period == ValidationSlot</c>.</summary>
    public const int ValidationSlot = 19;

    /// <summary>Unit <c>i</c> goes to test when <c>i % Period == TestSlot</c>.</summary>
    public const int TestSlot = 9;

    private TextCorpus(string source, CorpusUnit unit, string[] texts, SplitSize[] sizes)
    {
        (Source, Unit) = (source, unit);
        (Train, Validation, Test) = (texts[0], texts[1], texts[2]);
        (TrainSize, ValidationSize, TestSize) = (sizes[0], sizes[1], sizes[2]);
    }

    /// <summary>Where the text came from: a file path or the name of the embedded corpus.</summary>
    public string Source { get; }

    /// <summary>Whether paragraphs or lines were assigned to the splits.</summary>
    public CorpusUnit Unit { get; }

    /// <summary>The training text.</summary>
    public string Train { get; }

    /// <summary>The validation text: units 19, 39, 59, …</summary>
    public string Validation { get; }

    /// <summary>The test text: units 9, 29, 49, …</summary>
    public string Test { get; }

    /// <summary>The size of <see cref="Train"/>.</summary>
    public SplitSize TrainSize { get; }

    /// <summary>The size of <see cref="Validation"/>.</summary>
    public SplitSize ValidationSize { get; }

    /// <summary>The size of <see cref="Test"/>.</summary>
    public SplitSize TestSize { get; }

    /// <summary>The number of units in the whole corpus.</summary>
    public int Units => TrainSize.Units + ValidationSize.Units + TestSize.Units;

    /// <summary>The number of non-blank lines in the whole corpus.</summary>
    public int Lines => TrainSize.Lines + ValidationSize.Lines + TestSize.Lines;

    /// <summary>The text of one split.</summary>
    public string Text(CorpusSplit split) => split switch
    {
        CorpusSplit.Train => Train,
        CorpusSplit.Validation => Validation,
        CorpusSplit.Test => Test,
        _ => throw new ArgumentOutOfRangeException(nameof(split), split, null),
    };

    /// <summary>The size of one split.</summary>
    public SplitSize Size(CorpusSplit split) => split switch
    {
        CorpusSplit.Train => TrainSize,
        CorpusSplit.Validation => ValidationSize,
        CorpusSplit.Test => TestSize,
        _ => throw new ArgumentOutOfRangeException(nameof(split), split, null),
    };

    /// <summary>The split that unit <paramref name="index"/> (from 0) goes to.</summary>
    public static CorpusSplit SplitOf(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        return (index % Period) switch
        {
            ValidationSlot => CorpusSplit.Validation,
            TestSlot => CorpusSplit.Test,
            _ => CorpusSplit.Train,
        };
    }

    /// <summary>The largest corpus file <see cref="FromFile"/> reads (its text is held in memory several times while split).</summary>
    public const long MaxFileBytes = 1L << 29;

    /// <summary>Reads a UTF-8 text file and splits it by the rule on the class.</summary>
    /// <param name="path">The file; a UTF-8 byte-order mark is allowed.</param>
    /// <exception cref="DataFormatException">
    /// The file is missing, a directory, not a regular file (a device, a pipe), larger than <see cref="MaxFileBytes"/>,
    /// empty, not valid UTF-8, or too short to split.
    /// </exception>
    public static TextCorpus FromFile(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        return FromText(Decode(path, RegularFile.ReadAllBytes(path, MaxFileBytes)), path);
    }

    private static string Decode(string path, byte[] bytes)
    {
        if (bytes.Length == 0) throw new DataFormatException(path, "the file is empty: a text corpus needs UTF-8 text");
        string text;
        try
        {
            text = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new DataFormatException(path, $"not valid UTF-8 (first bad byte at offset {Utf8Bytes.FirstInvalid(bytes)}): save the text as UTF-8");
        }
        return text;
    }

    /// <summary>Splits a text by the rule on the class.</summary>
    /// <param name="text">The whole text.</param>
    /// <param name="source">A file path or name for <see cref="Source"/> and error messages.</param>
    /// <exception cref="DataFormatException">The text is blank or has fewer than <see cref="Period"/> non-blank lines.</exception>
    public static TextCorpus FromText(string text, string source)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentException.ThrowIfNullOrWhiteSpace(source);
        if (text.StartsWith('\uFEFF')) text = text[1..];
        string[] lines = text.ReplaceLineEndings("\n").Split('\n').Select(l => l.TrimEnd()).ToArray();
        var paragraphs = new List<string[]>();
        var current = new List<string>();
        foreach (string line in lines)
        {
            if (line.Length > 0)
            {
                current.Add(line);
            }
            else if (current.Count > 0)
            {
                paragraphs.Add(current.ToArray());
                current.Clear();
            }
        }
        if (current.Count > 0) paragraphs.Add(current.ToArray());
        int lineCount = paragraphs.Sum(p => p.Length);
        if (lineCount == 0) throw new DataFormatException(source, "the text is empty (only white space): a text corpus needs text");

        CorpusUnit unit;
        List<string[]> units;
        if (paragraphs.Count >= Period)
        {
            (unit, units) = (CorpusUnit.Paragraph, paragraphs);
        }
        else if (lineCount >= Period)
        {
            (unit, units) = (CorpusUnit.Line, paragraphs.SelectMany(p => p).Select(l => new[] { l }).ToList());
        }
        else
        {
            throw new DataFormatException(source,
                $"too little text to split: {paragraphs.Count} paragraphs and {lineCount} non-blank lines; at least {Period} are needed so that one in {Period} can go to validation");
        }

        var builders = new[] { new StringBuilder(), new StringBuilder(), new StringBuilder() };
        var counts = new (int Units, int Lines)[3];
        string separator = unit == CorpusUnit.Paragraph ? "\n" : "";
        for (int i = 0; i < units.Count; i++)
        {
            int s = (int)SplitOf(i);
            var b = builders[s];
            if (b.Length > 0) b.Append(separator);
            foreach (string line in units[i]) b.Append(line).Append('\n');
            counts[s] = (counts[s].Units + 1, counts[s].Lines + units[i].Length);
        }
        string[] texts = builders.Select(b => b.ToString()).ToArray();
        var sizes = Enumerable.Range(0, 3).Select(s => new SplitSize(counts[s].Units, counts[s].Lines, texts[s].Length)).ToArray();
        return new TextCorpus(source, unit, texts, sizes);
    }

}
