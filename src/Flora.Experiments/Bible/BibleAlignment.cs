using System.Text;

using Flora.Data.Corpora;

namespace Flora.Experiments.Bible;

/// <summary>Why a reference of <see cref="BibleAlignment"/> did not become a pair. Each reference gets one reason, the first that applies, in this order.</summary>
public enum AlignmentDropReason
{
    /// <summary>The target module has no verse of the book at all.</summary>
    BookOnlyInSource,

    /// <summary>The source module has no verse of the book at all (the World English Bible's deuterocanonical books).</summary>
    BookOnlyInTarget,

    /// <summary>The target module has the book but not this verse (its versification lacks it).</summary>
    VerseOnlyInSource,

    /// <summary>The source module has the book but not this verse (3 John 1:15 and Revelation 12:18 of the WEB's versification).</summary>
    VerseOnlyInTarget,

    /// <summary>Both modules have the verse, neither with text after the markup is removed.</summary>
    EmptyInBoth,

    /// <summary>The source module's verse has no text after the markup is removed.</summary>
    EmptyInSource,

    /// <summary>The target module's verse has no text after the markup is removed (verses such as Acts 8:37 that the WEB leaves out).</summary>
    EmptyInTarget,

    /// <summary>The verse is in a chapter whose numbering differs between the modules (see <see cref="BibleAlignment"/>).</summary>
    RenumberedChapter,

    /// <summary>A reference printed a second (or later) time by the same module; the first occurrence is the one aligned.
    /// Counted per extra occurrence, outside the count of references.</summary>
    DuplicateReference,
}

/// <summary>
/// Aligns two Bible texts verse by verse: a pair for every reference (book, chapter, verse) that both have with text.
/// <list type="bullet">
/// <item>Texts are normalised with <see cref="NormalizeText"/>: every run of white space or control characters
/// (tabs, line breaks, no-break spaces included) becomes one space, and the ends are trimmed.</item>
/// <item>Every reference in either text gets exactly one outcome, a pair or an <see cref="AlignmentDropReason"/>, so
/// <c>Aligned + (dropped references) == References</c>; repeated references are counted apart.</item>
/// <item>Renumbered chapters. A module whose own verse numbering differs from its versification's leaves the last
/// verse or verses of a chapter empty and puts their text elsewhere: at the end of the verse before (the Reina-Valera
/// 1909 at 2 Samuel 20:26) or at the start of the next chapter, which then runs a verse or more behind to its end
/// (Numbers 12:16, so all of Numbers 13; Job 38:39-41, so all of Job 39). Verse-number alignment pairs wrong texts
/// there. So when the last references of a chapter (one or more, in verse order) have no text in one module while
/// the other module has text for at least one of them (and the first module has text earlier in the chapter), that chapter and the next chapter of the same book are marked
/// renumbered, and their verses are dropped with <see cref="AlignmentDropReason.RenumberedChapter"/> (unless an
/// earlier reason applies). This drops some good pairs (the start of the chapter, a next chapter that did not shift)
/// to keep out the wrong ones; renumbering that leaves no empty verse at a chapter's end is not detected.</item>
/// <item>Pairs come in the order of the source text.</item>
/// </list>
/// </summary>
public sealed class BibleAlignment
{
    private BibleAlignment(IReadOnlyList<VersePair> pairs, int references, int[] dropped,
        IReadOnlyList<string>[] examples, IReadOnlyList<string> renumbered)
    {
        Pairs = pairs;
        References = references;
        _dropped = dropped;
        _examples = examples;
        RenumberedChapters = renumbered;
    }

    private readonly int[] _dropped;
    private readonly IReadOnlyList<string>[] _examples;

    /// <summary>How many examples of each drop reason <see cref="Examples"/> keeps.</summary>
    public const int ExampleCount = 10;

    /// <summary>The aligned verses, in the order of the source text.</summary>
    public IReadOnlyList<VersePair> Pairs { get; }

    /// <summary>The number of distinct references in either text.</summary>
    public int References { get; }

    /// <summary>The number of pairs.</summary>
    public int Aligned => Pairs.Count;

    /// <summary>The number of references dropped, all reasons but <see cref="AlignmentDropReason.DuplicateReference"/>: <c>References - Aligned</c>.</summary>
    public int DroppedReferences => References - Aligned;

    /// <summary>The chapters marked renumbered, such as "Numbers 13", in the order of the source text.</summary>
    public IReadOnlyList<string> RenumberedChapters { get; }

    /// <summary>All drop reasons, in the order they are tried.</summary>
    public static IReadOnlyList<AlignmentDropReason> Reasons { get; } = Enum.GetValues<AlignmentDropReason>();

    /// <summary>How many references (for duplicates: extra occurrences) were dropped for a reason.</summary>
    public int Dropped(AlignmentDropReason reason) => _dropped[(int)reason];

    /// <summary>The first <see cref="ExampleCount"/> references dropped for a reason, in order.</summary>
    public IReadOnlyList<string> Examples(AlignmentDropReason reason) => _examples[(int)reason];

    /// <summary>
    /// A name for a reason with the languages spelled out, such as "book-only-in-english" for
    /// <see cref="AlignmentDropReason.BookOnlyInTarget"/> with target "english": the keys of the manifest.
    /// </summary>
    public static string Key(AlignmentDropReason reason, string source, string target) => reason switch
    {
        AlignmentDropReason.BookOnlyInSource => $"book-only-in-{source}",
        AlignmentDropReason.BookOnlyInTarget => $"book-only-in-{target}",
        AlignmentDropReason.VerseOnlyInSource => $"verse-only-in-{source}",
        AlignmentDropReason.VerseOnlyInTarget => $"verse-only-in-{target}",
        AlignmentDropReason.EmptyInBoth => "empty-in-both",
        AlignmentDropReason.EmptyInSource => $"empty-in-{source}",
        AlignmentDropReason.EmptyInTarget => $"empty-in-{target}",
        AlignmentDropReason.RenumberedChapter => "renumbered-chapter",
        AlignmentDropReason.DuplicateReference => "duplicate-reference",
        _ => throw new ArgumentOutOfRangeException(nameof(reason), reason, null),
    };

    /// <summary>One line of text: runs of white space and control characters become one space; the ends are trimmed.</summary>
    public static string NormalizeText(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var b = new StringBuilder(text.Length);
        bool space = false;
        foreach (char c in text)
        {
            if (char.IsWhiteSpace(c) || char.IsControl(c))
            {
                space = b.Length > 0;
                continue;
            }
            if (space) b.Append(' ');
            space = false;
            b.Append(c);
        }
        return b.ToString();
    }

    /// <summary>Aligns two texts by reference as described on the class.</summary>
    /// <param name="source">The source text's verses, empty ones included (text "" or white space).</param>
    /// <param name="target">The target text's verses, empty ones included.</param>
    public static BibleAlignment Align(IEnumerable<Verse> source, IEnumerable<Verse> target)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(target);
        int reasons = Reasons.Count;
        var dropped = new int[reasons];
        var examples = Enumerable.Range(0, reasons).Select(_ => new List<string>()).ToArray();

        void Drop(AlignmentDropReason reason, string reference)
        {
            dropped[(int)reason]++;
            if (examples[(int)reason].Count < ExampleCount) examples[(int)reason].Add(reference);
        }

        var s = Index(source, Drop);
        var t = Index(target, Drop);
        var sourceBooks = s.Verses.Select(v => v.Book).ToHashSet(StringComparer.Ordinal);
        var targetBooks = t.Verses.Select(v => v.Book).ToHashSet(StringComparer.Ordinal);

        // The union of references: source order, then the target's own references where they fall in the target's order.
        var order = Union(s.Verses, t.Verses, s.ByKey);

        var renumbered = Renumbered(order, s.ByKey, t.ByKey, out var renumberedNames);

        var pairs = new List<VersePair>(Math.Min(s.Verses.Count, t.Verses.Count));
        foreach (var key in order)
        {
            string reference = $"{key.Book} {key.Chapter}:{key.Number}";
            bool inSource = s.ByKey.TryGetValue(key, out string? sourceText);
            bool inTarget = t.ByKey.TryGetValue(key, out string? targetText);
            if (!inTarget && !targetBooks.Contains(key.Book)) Drop(AlignmentDropReason.BookOnlyInSource, reference);
            else if (!inSource && !sourceBooks.Contains(key.Book)) Drop(AlignmentDropReason.BookOnlyInTarget, reference);
            else if (!inTarget) Drop(AlignmentDropReason.VerseOnlyInSource, reference);
            else if (!inSource) Drop(AlignmentDropReason.VerseOnlyInTarget, reference);
            else if (sourceText!.Length == 0 && targetText!.Length == 0) Drop(AlignmentDropReason.EmptyInBoth, reference);
            else if (sourceText.Length == 0) Drop(AlignmentDropReason.EmptyInSource, reference);
            else if (targetText!.Length == 0) Drop(AlignmentDropReason.EmptyInTarget, reference);
            else if (renumbered.Contains((key.Book, key.Chapter))) Drop(AlignmentDropReason.RenumberedChapter, reference);
            else pairs.Add(new VersePair(reference, sourceText, targetText));
        }
        return new BibleAlignment(pairs, order.Count, dropped, examples, renumberedNames);
    }

    private readonly record struct Ref(string Book, int Chapter, int Number);

    private sealed record Indexed(List<Ref> Verses, Dictionary<Ref, string> ByKey);

    /// <summary>The distinct references of a text in order, with normalised texts; repeats are dropped.</summary>
    private static Indexed Index(IEnumerable<Verse> verses, Action<AlignmentDropReason, string> drop)
    {
        var order = new List<Ref>();
        var byKey = new Dictionary<Ref, string>();
        foreach (var verse in verses)
        {
            ArgumentNullException.ThrowIfNull(verse);
            var key = new Ref(verse.Book, verse.Chapter, verse.Number);
            if (byKey.TryAdd(key, NormalizeText(verse.Text ?? ""))) order.Add(key);
            else drop(AlignmentDropReason.DuplicateReference, verse.Reference);
        }
        return new Indexed(order, byKey);
    }

    /// <summary>The source's references in order, with each target-only reference inserted after the reference that precedes it in the target.</summary>
    private static List<Ref> Union(List<Ref> source, List<Ref> target, Dictionary<Ref, string> inSource)
    {
        var after = new Dictionary<Ref, List<Ref>>();
        var leading = new List<Ref>();
        Ref? previous = null;
        foreach (var key in target)
        {
            if (inSource.ContainsKey(key))
            {
                previous = key;
                continue;
            }
            if (previous is { } p)
            {
                if (!after.TryGetValue(p, out var list)) after[p] = list = [];
                list.Add(key);
            }
            else
            {
                leading.Add(key);
            }
        }
        var union = new List<Ref>(source.Count + leading.Count);
        union.AddRange(leading);
        foreach (var key in source)
        {
            union.Add(key);
            if (after.TryGetValue(key, out var list)) union.AddRange(list);
        }
        return union;
    }

    /// <summary>The chapters marked renumbered by the rule on the class.</summary>
    private static HashSet<(string Book, int Chapter)> Renumbered(List<Ref> order, Dictionary<Ref, string> source,
        Dictionary<Ref, string> target, out IReadOnlyList<string> names)
    {
        var chapters = order.GroupBy(k => (k.Book, k.Chapter)).Select(g => (g.Key, Verses: g.OrderBy(k => k.Number).ToList())).ToList();
        var chaptersOfBook = chapters.GroupBy(c => c.Key.Book).ToDictionary(g => g.Key, g => g.Select(c => c.Key.Chapter).Order().ToList());
        var marked = new HashSet<(string Book, int Chapter)>();
        foreach (var (chapter, verses) in chapters)
        {
            if (!EmptyTail(verses, source, target) && !EmptyTail(verses, target, source)) continue;
            marked.Add(chapter);
            var numbers = chaptersOfBook[chapter.Book];
            int next = numbers.IndexOf(chapter.Chapter) + 1;
            if (next < numbers.Count) marked.Add((chapter.Book, numbers[next]));
        }
        names = chapters.Select(c => c.Key).Where(marked.Contains).Select(c => $"{c.Book} {c.Chapter}").ToList();
        return marked;
    }

    /// <summary>
    /// Whether the chapter's last references have no text in <paramref name="side"/> while <paramref name="other"/>
    /// has text for one of them; a chapter without any text in <paramref name="side"/> is a missing chapter, not this.
    /// </summary>
    private static bool EmptyTail(List<Ref> verses, Dictionary<Ref, string> side, Dictionary<Ref, string> other)
    {
        bool otherHasText = false;
        for (int i = verses.Count - 1; i >= 0; i--)
        {
            if (side.TryGetValue(verses[i], out string? text) && text.Length > 0) return otherHasText;
            if (other.TryGetValue(verses[i], out string? o) && o.Length > 0) otherHasText = true;
        }
        return false;
    }
}
