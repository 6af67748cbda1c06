using Flora.Data.Corpora;

namespace Flora.Experiments.Bible;

/// <summary>A book of the Bible.</summary>
/// <param name="Index">Its position in the canon, from 0 (Genesis) to 65 (Revelation).</param>
/// <param name="Name">Its usual English name, such as "1 Samuel"; diatheke accepts it as a key.</param>
/// <param name="SwordName">The name diatheke prints in verse references with its English locale, such as "I Samuel".</param>
public sealed record BibleBook(int Index, string Name, string SwordName)
{
    /// <summary>True for the 27 books from Matthew on.</summary>
    public bool IsNewTestament => Index >= BibleBooks.OldTestamentCount;
}

/// <summary>
/// The 66 books of the English Protestant canon in their usual order: the 39 books of the Old
/// Testament, Genesis to Malachi, then the 27 of the New Testament, Matthew to Revelation.
/// </summary>
public static class BibleBooks
{
    /// <summary>The number of Old Testament books; the New Testament starts at this index.</summary>
    public const int OldTestamentCount = 39;

    private static readonly string[] Names =
    {
        "Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy", "Joshua", "Judges", "Ruth",
        "1 Samuel", "2 Samuel", "1 Kings", "2 Kings", "1 Chronicles", "2 Chronicles", "Ezra", "Nehemiah", "Esther",
        "Job", "Psalms", "Proverbs", "Ecclesiastes", "Song of Solomon",
        "Isaiah", "Jeremiah", "Lamentations", "Ezekiel", "Daniel",
        "Hosea", "Joel", "Amos", "Obadiah", "Jonah", "Micah", "Nahum", "Habakkuk", "Zephaniah", "Haggai", "Zechariah", "Malachi",
        "Matthew", "Mark", "Luke", "John", "Acts",
        "Romans", "1 Corinthians", "2 Corinthians", "Galatians", "Ephesians", "Philippians", "Colossians",
        "1 Thessalonians", "2 Thessalonians", "1 Timothy", "2 Timothy", "Titus", "Philemon", "Hebrews",
        "James", "1 Peter", "2 Peter", "1 John", "2 John", "3 John", "Jude", "Revelation",
    };

    /// <summary>The 66 books in canonical order.</summary>
    public static IReadOnlyList<BibleBook> Protestant { get; } =
        Names.Select((name, i) => new BibleBook(i, name, SwordNameOf(name))).ToArray();

    /// <summary>Finds a book by its <see cref="BibleBook.Name"/> or <see cref="BibleBook.SwordName"/>, ignoring case.</summary>
    /// <returns>The book, or null when <paramref name="name"/> is not one of the 66.</returns>
    public static BibleBook? Find(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        foreach (var book in Protestant)
        {
            if (string.Equals(book.Name, name, StringComparison.OrdinalIgnoreCase) ||
                string.Equals(book.SwordName, name, StringComparison.OrdinalIgnoreCase))
            {
                return book;
            }
        }
        return null;
    }

    /// <summary>Finds a book by name.</summary>
    /// <exception cref="FloraException">The name is not one of the 66 books.</exception>
    public static BibleBook Get(string name) =>
        Find(name) ?? throw new FloraException($"'{name}' is not a book of the 66-book canon; expected a name such as 'Genesis', '1 Samuel' or 'Revelation'");

    /// <summary>
    /// The name diatheke prints with its English locale: a leading 1, 2 or 3 becomes I, II or III,
    /// and Revelation is "Revelation of John"; every other name is printed as it is.
    /// </summary>
    private static string SwordNameOf(string name) => name switch
    {
        "Revelation" => "Revelation of John",
        _ when name.StartsWith("1 ", StringComparison.Ordinal) => "I " + name[2..],
        _ when name.StartsWith("2 ", StringComparison.Ordinal) => "II " + name[2..],
        _ when name.StartsWith("3 ", StringComparison.Ordinal) => "III " + name[2..],
        _ => name,
    };
}
