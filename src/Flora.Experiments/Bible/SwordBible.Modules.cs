using Flora.Data.Corpora;

namespace Flora.Experiments.Bible;

/// <summary>
/// Whole-module reading and module listing for the prepared data sets (<see cref="BiblePreparation"/>): the verses
/// of a range with the empty ones kept, so that an alignment can tell a verse the translation leaves empty from
/// one its versification does not have, and the modules diatheke can see.
/// </summary>
public sealed partial class SwordBible
{
    /// <summary>
    /// The key that covers every book of a module. SWORD versifications have two testaments, the first starting
    /// with Genesis and the second ending with Revelation; deuterocanonical books, where a versification has them
    /// (the World English Bible's NRSVA does), sit inside that range, after Malachi.
    /// </summary>
    public const string WholeBibleKey = "Genesis 1:1-Revelation 22:21";

    /// <summary>
    /// Reads the verses of a key like <see cref="ReadRange"/>, but keeps the verses that have no text after the
    /// markup is removed: their <see cref="Verse.Text"/> is the empty string.
    /// </summary>
    /// <exception cref="FloraException">diatheke or the module is missing, the key gives no verses, or the output is not as expected.</exception>
    public IReadOnlyList<Verse> ReadRangeWithEmptyVerses(string key)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(key);
        string output = Run(Arguments(key), out string commandLine);
        if (output.Trim().Length == 0)
        {
            CheckModuleInstalled();
            throw new FloraException($"diatheke printed nothing for '{key}' (command: {commandLine})");
        }
        var verses = ParseWithEmptyVerses(output, Module, commandLine);
        if (verses.Count == 0)
        {
            throw new FloraException($"diatheke printed no verses for '{key}': is it a valid reference? (command: {commandLine})");
        }
        return verses;
    }

    /// <summary>
    /// Parses like <see cref="Parse"/> (same checks, same text) but keeps every reference diatheke printed, in
    /// order, those without text as verses whose <see cref="Verse.Text"/> is empty. Pure: it runs nothing.
    /// </summary>
    /// <exception cref="FloraException">The output does not have the shape <see cref="Parse"/> describes.</exception>
    public static IReadOnlyList<Verse> ParseWithEmptyVerses(string output, string module, string? commandLine = null)
    {
        var withText = Parse(output, module, commandLine);
        var all = new List<Verse>(withText.Count + 16);
        int next = 0;
        foreach (string line in output.ReplaceLineEndings("\n").Split('\n'))
        {
            var m = VerseStart().Match(line);
            if (!m.Success) continue;
            string printed = m.Groups["book"].Value;
            string book = BibleBooks.Find(printed)?.Name ?? printed;
            int chapter = int.Parse(m.Groups["chapter"].ValueSpan);
            int number = int.Parse(m.Groups["verse"].ValueSpan);
            if (next < withText.Count && withText[next] is var v && v.Book == book && v.Chapter == chapter && v.Number == number)
            {
                all.Add(v);
                next++;
            }
            else
            {
                all.Add(new Verse(book, chapter, number, ""));
            }
        }
        if (next != withText.Count)
        {
            throw Unexpected(commandLine, $"the verse {withText[next].Reference} could not be matched to a reference line");
        }
        return all;
    }

    /// <summary>The names of the modules diatheke can read (<c>diatheke -b system -k modulelistnames</c>).</summary>
    /// <exception cref="FloraException">diatheke is missing or fails.</exception>
    public IReadOnlyList<string> InstalledModules() =>
        Run(["-b", "system", "-k", "modulelistnames"], out _)
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>
    /// The descriptions diatheke gives for its modules (<c>diatheke -b system -k modulelist</c>, lines such as
    /// "engWEB2015eb : World English Bible with Deuterocanon"), by module name.
    /// </summary>
    /// <exception cref="FloraException">diatheke is missing or fails.</exception>
    public IReadOnlyDictionary<string, string> ModuleDescriptions()
    {
        var descriptions = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string line in Run(["-b", "system", "-k", "modulelist"], out _).Split('\n', StringSplitOptions.TrimEntries))
        {
            int colon = line.IndexOf(" : ", StringComparison.Ordinal);
            if (colon > 0) descriptions.TryAdd(line[..colon].Trim(), line[(colon + 3)..].Trim());
        }
        return descriptions;
    }
}
