using System.ComponentModel;
using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

using Flora.Data.Corpora;

namespace Flora.Experiments.Bible;

/// <summary>
/// Reads a Bible text of the SWORD project (CrossWire) through <c>diatheke</c>, its command-line front end
/// (Debian package <c>diatheke</c>), and parses what it prints into <see cref="Verse"/> records.
/// <para>
/// It runs <c>diatheke -b MODULE -f internal -o fs -l en -k KEY</c>: the module's own markup (OSIS for the
/// World English Bible and the Reina-Valera 1909), with footnotes and cross-references present as (empty)
/// <c>&lt;note&gt;</c> elements, and English book names. The notes are asked for because the modules leave
/// out the space where a note sat: with notes filtered out, diatheke prints "Godcreated" and "Jude,a servant";
/// with them present <see cref="Parse"/> can put the space back. The plain format (<c>-f plain</c>) is not used:
/// it turns notes into bracketed text, prints psalm titles again before every verse of the psalm (a stale
/// heading when headings are filtered out) and breaks poetry into lines that cannot be told from headings.
/// </para>
/// </summary>
public sealed partial class SwordBible
{
    /// <summary>The executable looked up on PATH by default.</summary>
    public const string DefaultExecutable = "diatheke";

    /// <summary>The SWORD module of the World English Bible (public domain), in the Debian package <c>sword-text-web</c>.</summary>
    public const string WorldEnglishBible = "engWEB2015eb";

    /// <summary>The SWORD module of the Reina-Valera 1909 (public domain), in the Debian package <c>sword-text-sparv</c>.</summary>
    public const string ReinaValera1909 = "spaRV1909eb";

    private const string InstallHint = "install it with 'sudo apt-get install diatheke sword-text-web'";

    /// <summary>Longest a single diatheke call may take; a whole book takes well under a second.</summary>
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);

    private static readonly Dictionary<string, string> Packages = new(StringComparer.OrdinalIgnoreCase)
    {
        [WorldEnglishBible] = "sword-text-web",
        [ReinaValera1909] = "sword-text-sparv",
    };

    /// <summary>Creates a reader of one module.</summary>
    /// <param name="module">The SWORD module name, such as <see cref="WorldEnglishBible"/>.</param>
    /// <param name="executable">The diatheke executable: a name looked up on PATH or a path.</param>
    public SwordBible(string module, string executable = DefaultExecutable)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(module);
        ArgumentException.ThrowIfNullOrWhiteSpace(executable);
        (Module, Executable) = (module, executable);
    }

    /// <summary>The SWORD module read.</summary>
    public string Module { get; }

    /// <summary>The diatheke executable run.</summary>
    public string Executable { get; }

    /// <summary>The Debian package that installs a module, when it is one this class knows.</summary>
    public static string? DebianPackageOf(string module) => Packages.GetValueOrDefault(module);

    /// <summary>Reads the verses of a key, such as "Gen 1:1-Gen 1:5", "Psalms 23" or "Jude".</summary>
    /// <returns>The verses in the order diatheke prints them, verses without text left out.</returns>
    /// <exception cref="FloraException">diatheke or the module is missing, the key gives no verses, or the output is not as expected.</exception>
    public IReadOnlyList<Verse> ReadRange(string key)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(key);
        string output = Run(Arguments(key), out string commandLine);
        if (output.Trim().Length == 0)
        {
            CheckModuleInstalled();
            throw new FloraException($"diatheke printed nothing for '{key}' (command: {commandLine})");
        }
        var verses = Parse(output, Module, commandLine);
        if (verses.Count == 0)
        {
            throw new FloraException($"diatheke printed no verses for '{key}': is it a valid reference? (command: {commandLine})");
        }
        return verses;
    }

    /// <summary>Reads a whole book.</summary>
    /// <param name="book">The book's name, one of <see cref="BibleBooks.Protestant"/>.</param>
    /// <exception cref="FloraException">The book is not one of the 66, diatheke or the module is missing, or the output is not that book.</exception>
    public IReadOnlyList<Verse> ReadBook(string book)
    {
        var known = BibleBooks.Get(book);
        var verses = ReadRange(known.Name);
        var stray = verses.FirstOrDefault(v => v.Book != known.Name);
        if (stray is not null)
        {
            throw new FloraException($"diatheke printed {stray.Reference} when asked for the book {known.Name} (command: {CommandLine(known.Name)})");
        }
        return verses;
    }

    /// <summary>Reads books one after another, each with its own diatheke call.</summary>
    public IReadOnlyList<Verse> ReadBooks(IEnumerable<string> books)
    {
        ArgumentNullException.ThrowIfNull(books);
        var verses = new List<Verse>();
        foreach (string book in books) verses.AddRange(ReadBook(book));
        return verses;
    }

    /// <summary>Reads the 66 books of <see cref="BibleBooks.Protestant"/>, book by book.</summary>
    public IReadOnlyList<Verse> ReadBible() => ReadBooks(BibleBooks.Protestant.Select(b => b.Name));

    /// <summary>The arguments given to diatheke for a key.</summary>
    public IReadOnlyList<string> Arguments(string key) => ["-b", Module, "-f", "internal", "-o", "fs", "-l", "en", "-k", key];

    /// <summary>The command line run for a key, quoted for a POSIX shell, for messages and provenance notes.</summary>
    public string CommandLine(string key) => Format(Arguments(key));

    private string Format(IReadOnlyList<string> arguments) => string.Join(' ', new[] { Executable }.Concat(arguments).Select(ShellQuote));

    private static string ShellQuote(string s) =>
        s.Length > 0 && s.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '/' or ':' or '=')
            ? s
            : "'" + s.Replace("'", "'\\''") + "'";

    /// <summary>
    /// Parses what <c>diatheke -f internal</c> prints into verses. Pure: it runs nothing.
    /// <list type="bullet">
    /// <item>Each verse starts a line with its reference, "Book C:V: ", as in "Genesis 1:1: " or "I Samuel 3:4: ";
    /// markup before the reference on that line (psalm titles, line-group starts, the stale title that diatheke
    /// repeats before every verse of a psalm) is the verse's heading and is dropped.</item>
    /// <item>Lines up to the next reference belong to the verse (a module may break a verse across lines).</item>
    /// <item>The last non-blank line is the module name in parentheses, such as "(engWEB2015eb)".</item>
    /// <item>The verse text is converted to plain text as <see cref="OsisText"/> describes (markup, notes and the
    /// glossary after Revelation removed, white space normalised); verses left with no text, which the
    /// versification has and the translation does not (such as Acts 8:37 in the WEB), are left out.</item>
    /// <item>Book names are mapped to <see cref="BibleBook.Name"/> ("I Samuel" becomes "1 Samuel", "Revelation of John"
    /// becomes "Revelation"); names of other books are kept as printed.</item>
    /// </list>
    /// </summary>
    /// <param name="output">Everything diatheke printed on standard output.</param>
    /// <param name="module">The module asked for, expected on the last line.</param>
    /// <param name="commandLine">The command that printed it, for error messages; null when not known.</param>
    /// <exception cref="FloraException">The output does not have this shape.</exception>
    public static IReadOnlyList<Verse> Parse(string output, string module, string? commandLine = null)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentException.ThrowIfNullOrWhiteSpace(module);
        string[] lines = output.ReplaceLineEndings("\n").Split('\n');
        int count = lines.Length;
        while (count > 0 && lines[count - 1].Trim().Length == 0) count--;
        if (count == 0) throw Unexpected(commandLine, "the output is empty");
        string last = lines[count - 1].Trim();
        if (last != $"({module})")
        {
            throw Unexpected(commandLine, $"expected the last line to be '({module})', got '{Shorten(last)}'");
        }

        var verses = new List<Verse>();
        string? book = null;
        int chapter = 0, number = 0;
        var markup = new StringBuilder();
        for (int i = 0; i < count - 1; i++)
        {
            var m = VerseStart().Match(lines[i]);
            if (m.Success)
            {
                Flush();
                book = m.Groups["book"].Value;
                if (!int.TryParse(m.Groups["chapter"].ValueSpan, out chapter) || !int.TryParse(m.Groups["verse"].ValueSpan, out number))
                {
                    throw Unexpected(commandLine, $"line {i + 1}: reference out of range in '{Shorten(lines[i])}'");
                }
                markup.Append(m.Groups["text"].ValueSpan);
            }
            else if (book is not null)
            {
                markup.Append('\n').Append(lines[i]);
            }
            else if (lines[i].Trim().Length > 0)
            {
                throw Unexpected(commandLine, $"line {i + 1} is not a verse (expected 'Book chapter:verse: text'): '{Shorten(lines[i])}'");
            }
        }
        Flush();
        return verses;

        void Flush()
        {
            if (book is null) return;
            string text = OsisText.ToPlainText(markup.ToString());
            if (text.Length > 0) verses.Add(new Verse(BibleBooks.Find(book)?.Name ?? book, chapter, number, text));
            markup.Clear();
        }
    }

    /// <summary>
    /// A reference at the start of a line, after any markup: the heading (tags, or whole title elements with
    /// their text), the book (no colon, no angle bracket), a space, chapter:verse, a colon, then the text.
    /// </summary>
    [GeneratedRegex(@"^(?<pre>(?:\s|<title\b[^>]*>.*?</title>|<[^>]*>)*)(?<book>[^\s<>:](?:[^<>:]*?[^\s<>:])?) (?<chapter>\d+):(?<verse>\d+):(?: |$)(?<text>.*)$")]
    private static partial Regex VerseStart();

    private static FloraException Unexpected(string? commandLine, string problem) =>
        new($"unexpected diatheke output{(commandLine is null ? "" : $" (command: {commandLine})")}: {problem}");

    private static string Shorten(string s) => s.Length <= 80 ? s : s[..77] + "...";

    /// <summary>Throws the install hint when the module is not among those diatheke lists.</summary>
    private void CheckModuleInstalled()
    {
        string list = Run(["-b", "system", "-k", "modulelistnames"], out _);
        var installed = list.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (installed.Contains(Module, StringComparer.Ordinal)) return;
        string? package = DebianPackageOf(Module);
        throw new FloraException(package is null
            ? $"SWORD module '{Module}' is not installed: install the Debian package that provides it (see 'apt-cache search sword-text')"
            : $"SWORD module '{Module}' is not installed: install it with 'sudo apt-get install {package}'");
    }

    /// <summary>Runs diatheke and returns its standard output, which must be valid UTF-8.</summary>
    private string Run(IReadOnlyList<string> arguments, out string commandLine)
    {
        commandLine = Format(arguments);
        var start = new ProcessStartInfo(Executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string a in arguments) start.ArgumentList.Add(a);
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new FloraException($"diatheke could not be started (command: {commandLine})");
        }
        catch (Win32Exception e)
        {
            throw new FloraException($"diatheke not found: {InstallHint} ({Executable}: {e.Message})", e);
        }
        using (process)
        {
            process.StandardInput.Close();
            var stdout = Task.Run(() =>
            {
                using var buffer = new MemoryStream();
                process.StandardOutput.BaseStream.CopyTo(buffer);
                return buffer.ToArray();
            });
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(Timeout))
            {
                process.Kill(entireProcessTree: true);
                throw new FloraException($"diatheke did not finish within {Timeout.TotalSeconds:F0} s (command: {commandLine})");
            }
            process.WaitForExit();
            byte[] bytes = stdout.GetAwaiter().GetResult();
            string errors = stderr.GetAwaiter().GetResult().Trim();
            if (process.ExitCode != 0)
            {
                throw new FloraException($"diatheke failed with exit code {process.ExitCode}{(errors.Length > 0 ? $": {Shorten(errors)}" : "")} (command: {commandLine})");
            }
            try
            {
                return new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes);
            }
            catch (DecoderFallbackException e)
            {
                throw new FloraException($"diatheke printed text that is not valid UTF-8 (command: {commandLine})", e);
            }
        }
    }
}
