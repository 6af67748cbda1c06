using System.Text;

namespace Flora.Metrics;

/// <summary>
/// The Porter stemmer exactly as NLTK's <c>nltk.stem.porter.PorterStemmer()</c> computes it in its default
/// mode, <c>NLTK_EXTENSIONS</c> (the stemmer Google's <c>rouge-score</c> uses when stemming is on). The
/// behaviour reproduced is NLTK 3.8's (its stemming code is the same in 3.8.1), checked word for word against
/// NLTK by the tests' fixture.
/// </summary>
/// <remarks>
/// <para>
/// This is Porter's 1980 algorithm (steps 1a, 1b, 1c, 2, 3, 4, 5a, 5b) with the deviations NLTK makes by
/// default: a small table of irregular forms looked up first ("skies" → "sky", "dying" → "die", ...); words of
/// at most two characters returned unchanged (lowercased); "ies"/"ied" on four-letter words becoming "ie"
/// ("dies" → "die") and "ied" otherwise becoming "i"; step 1c turning a final y into i only after a consonant
/// that is not the first letter ("happy" → "happi", "spy" → "spi", "enjoy" unchanged); condition *o also true for a
/// two-letter vowel-consonant stem; step 2 with "bli" → "ble" (not "abli"), "alli" → "al" tried first and
/// followed by step 2 again, and the extra rules "fulli" → "ful" and "logi" → "log" (whose measure condition
/// includes the l).
/// </para>
/// <para>
/// In every rule list the first suffix that matches decides: if its condition fails, no later rule of that
/// list is tried.
/// </para>
/// <para>
/// Case: the word is lowercased first as Python's <c>str.lower()</c> does for everything <c>rouge-score</c>
/// can pass (ASCII), and for other text by invariant simple case mapping plus U+0130 → "i\u0307"; Python's
/// context-dependent Greek final sigma is not reproduced. Positions are UTF-16 code units, which equal
/// Python's code points everywhere outside the astral planes.
/// </para>
/// <para>Thread-safe: the stemmer keeps no state.</para>
/// </remarks>
internal static class PorterStemmer
{
    /// <summary>NLTK's table of irregular forms: the word as given (before lowercasing) → its stem.</summary>
    private static readonly Dictionary<string, string> Irregular = new(StringComparer.Ordinal)
    {
        ["sky"] = "sky",
        ["skies"] = "sky",
        ["dying"] = "die",
        ["lying"] = "lie",
        ["tying"] = "tie",
        ["news"] = "news",
        ["innings"] = "inning",
        ["inning"] = "inning",
        ["outings"] = "outing",
        ["outing"] = "outing",
        ["cannings"] = "canning",
        ["canning"] = "canning",
        ["howe"] = "howe",
        ["proceed"] = "proceed",
        ["exceed"] = "exceed",
        ["succeed"] = "succeed",
    };

    /// <summary>A suffix rule: the suffix, its replacement, and the condition on the word with the suffix removed.</summary>
    private readonly record struct Rule(string Suffix, string Replacement, Func<string, bool>? Condition);

    private static readonly Func<string, bool> MeasureAboveZero = stem => Measure(stem) > 0;
    private static readonly Func<string, bool> MeasureAboveOne = stem => Measure(stem) > 1;

    private static readonly Rule[] Step1aRules =
    [
        new("sses", "ss", null),
        new("ies", "i", null),
        new("ss", "ss", null),
        new("s", "", null),
    ];

    /// <summary>Step 2 without NLTK's "logi" rule, whose condition depends on the whole word (see <see cref="Step2"/>).</summary>
    private static readonly Rule[] Step2Rules =
    [
        new("ational", "ate", MeasureAboveZero),
        new("tional", "tion", MeasureAboveZero),
        new("enci", "ence", MeasureAboveZero),
        new("anci", "ance", MeasureAboveZero),
        new("izer", "ize", MeasureAboveZero),
        new("bli", "ble", MeasureAboveZero),
        new("alli", "al", MeasureAboveZero),
        new("entli", "ent", MeasureAboveZero),
        new("eli", "e", MeasureAboveZero),
        new("ousli", "ous", MeasureAboveZero),
        new("ization", "ize", MeasureAboveZero),
        new("ation", "ate", MeasureAboveZero),
        new("ator", "ate", MeasureAboveZero),
        new("alism", "al", MeasureAboveZero),
        new("iveness", "ive", MeasureAboveZero),
        new("fulness", "ful", MeasureAboveZero),
        new("ousness", "ous", MeasureAboveZero),
        new("aliti", "al", MeasureAboveZero),
        new("iviti", "ive", MeasureAboveZero),
        new("biliti", "ble", MeasureAboveZero),
        new("fulli", "ful", MeasureAboveZero),
    ];

    private static readonly Rule[] Step3Rules =
    [
        new("icate", "ic", MeasureAboveZero),
        new("ative", "", MeasureAboveZero),
        new("alize", "al", MeasureAboveZero),
        new("iciti", "ic", MeasureAboveZero),
        new("ical", "ic", MeasureAboveZero),
        new("ful", "", MeasureAboveZero),
        new("ness", "", MeasureAboveZero),
    ];

    private static readonly Rule[] Step4Rules =
    [
        new("al", "", MeasureAboveOne),
        new("ance", "", MeasureAboveOne),
        new("ence", "", MeasureAboveOne),
        new("er", "", MeasureAboveOne),
        new("ic", "", MeasureAboveOne),
        new("able", "", MeasureAboveOne),
        new("ible", "", MeasureAboveOne),
        new("ant", "", MeasureAboveOne),
        new("ement", "", MeasureAboveOne),
        new("ment", "", MeasureAboveOne),
        new("ent", "", MeasureAboveOne),
        new("ion", "", stem => Measure(stem) > 1 && stem[^1] is 's' or 't'),
        new("ou", "", MeasureAboveOne),
        new("ism", "", MeasureAboveOne),
        new("ate", "", MeasureAboveOne),
        new("iti", "", MeasureAboveOne),
        new("ous", "", MeasureAboveOne),
        new("ive", "", MeasureAboveOne),
        new("ize", "", MeasureAboveOne),
    ];

    /// <summary>The stem of <paramref name="word"/>, as NLTK's <c>PorterStemmer().stem(word)</c> returns it.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="word"/> is null.</exception>
    public static string Stem(string word)
    {
        ArgumentNullException.ThrowIfNull(word);
        // NLTK looks the word up as given but lowercases it for everything else.
        if (Irregular.TryGetValue(word, out string? irregular))
        {
            return irregular;
        }

        string stem = PythonLower(word);
        if (CodePointCount(word) <= 2)
        {
            return stem;
        }

        stem = Step1a(stem);
        stem = Step1b(stem);
        stem = Step1c(stem);
        stem = Step2(stem);
        stem = Step3(stem);
        stem = Step4(stem);
        stem = Step5a(stem);
        stem = Step5b(stem);
        return stem;
    }

    // ---- the letters: consonants, measure, conditions ----

    /// <summary>
    /// Whether <c>word[i]</c> is a consonant: anything but a, e, i, o, u, where y counts as a consonant at the
    /// start or after a vowel and as a vowel after a consonant.
    /// </summary>
    internal static bool IsConsonant(string word, int i)
    {
        // Walk back over a run of y's: each y flips the status of the letter before it.
        int j = i;
        while (j > 0 && word[j] == 'y')
        {
            j--;
        }
        bool consonant = word[j] switch
        {
            'a' or 'e' or 'i' or 'o' or 'u' => false,
            _ => true, // includes a y at position 0
        };
        // word[j+1..i] are all y's; each one is the opposite of its predecessor.
        return ((i - j) & 1) == 0 ? consonant : !consonant;
    }

    /// <summary>
    /// Porter's measure m of a stem written [C](VC){m}[V]: the number of places where a vowel is followed by a
    /// consonant.
    /// </summary>
    internal static int Measure(string stem)
    {
        int m = 0;
        bool previousConsonant = true;
        for (int i = 0; i < stem.Length; i++)
        {
            bool consonant = ConsonantAfter(stem[i], i == 0 || previousConsonant, i == 0);
            if (consonant && !previousConsonant && i > 0)
            {
                m++;
            }
            previousConsonant = consonant;
        }
        return m;
    }

    /// <summary>Condition *v*: the stem contains a vowel.</summary>
    private static bool ContainsVowel(string stem)
    {
        bool previousConsonant = true;
        for (int i = 0; i < stem.Length; i++)
        {
            previousConsonant = ConsonantAfter(stem[i], previousConsonant, i == 0);
            if (!previousConsonant)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Whether letter <paramref name="c"/> is a consonant given whether the letter before it is.</summary>
    private static bool ConsonantAfter(char c, bool previousConsonant, bool first) => c switch
    {
        'a' or 'e' or 'i' or 'o' or 'u' => false,
        'y' => first || !previousConsonant,
        _ => true,
    };

    /// <summary>Condition *d: the word ends with a doubled consonant.</summary>
    private static bool EndsDoubleConsonant(string word) =>
        word.Length >= 2 && word[^1] == word[^2] && IsConsonant(word, word.Length - 1);

    /// <summary>
    /// Condition *o: the word ends consonant-vowel-consonant with the last consonant not w, x or y; NLTK also
    /// accepts a two-letter word vowel-consonant (any consonant).
    /// </summary>
    private static bool EndsCvc(string word)
    {
        int n = word.Length;
        if (n >= 3
            && IsConsonant(word, n - 3) && !IsConsonant(word, n - 2) && IsConsonant(word, n - 1)
            && word[^1] is not ('w' or 'x' or 'y'))
        {
            return true;
        }
        return n == 2 && !IsConsonant(word, 0) && IsConsonant(word, 1);
    }

    /// <summary>
    /// Applies the first rule whose suffix the word ends with: the stem plus the replacement when its condition
    /// holds (or it has none), otherwise the word unchanged. A word no suffix matches is returned unchanged.
    /// </summary>
    private static string ApplyFirst(string word, Rule[] rules) => ApplyFirst(word, rules, out _);

    private static string ApplyFirst(string word, Rule[] rules, out bool matched)
    {
        foreach (Rule rule in rules)
        {
            if (word.EndsWith(rule.Suffix, StringComparison.Ordinal))
            {
                matched = true;
                string stem = word[..^rule.Suffix.Length];
                return rule.Condition is null || rule.Condition(stem) ? stem + rule.Replacement : word;
            }
        }
        matched = false;
        return word;
    }

    // ---- the steps ----

    /// <summary>Plurals: sses → ss, ies → i (NLTK: a four-letter "-ies" word → "-ie"), ss → ss, s → "".</summary>
    private static string Step1a(string word)
    {
        if (word.Length == 4 && word.EndsWith("ies", StringComparison.Ordinal))
        {
            return word[..^3] + "ie";
        }
        return ApplyFirst(word, Step1aRules);
    }

    /// <summary>
    /// Past tenses and participles: (m&gt;0) eed → ee; (*v*) ed → ""; (*v*) ing → "", and after the last two a
    /// tidy-up (at → ate, bl → ble, iz → ize, a doubled consonant other than l, s, z undoubled, or an e added to
    /// an m=1 *o stem). NLTK first maps "-ied" to "-ie" in four-letter words and to "-i" otherwise.
    /// </summary>
    private static string Step1b(string word)
    {
        if (word.EndsWith("ied", StringComparison.Ordinal))
        {
            return word[..^3] + (word.Length == 4 ? "ie" : "i");
        }

        if (word.EndsWith("eed", StringComparison.Ordinal))
        {
            string root = word[..^3];
            return Measure(root) > 0 ? root + "ee" : word;
        }

        string? stem = null;
        foreach (string suffix in (ReadOnlySpan<string>)["ed", "ing"])
        {
            if (word.EndsWith(suffix, StringComparison.Ordinal) && ContainsVowel(word[..^suffix.Length]))
            {
                stem = word[..^suffix.Length];
                break;
            }
        }
        if (stem is null)
        {
            return word;
        }

        if (stem.EndsWith("at", StringComparison.Ordinal) || stem.EndsWith("bl", StringComparison.Ordinal)
            || stem.EndsWith("iz", StringComparison.Ordinal))
        {
            return stem + "e";
        }
        if (EndsDoubleConsonant(stem))
        {
            return stem[^1] is 'l' or 's' or 'z' ? stem : stem[..^1];
        }
        if (stem.EndsWith("*d", StringComparison.Ordinal))
        {
            // NLTK marks its doubled-consonant rule with the pseudo-suffix "*d", which a word really ending in
            // "*d" also matches: the two characters give way to the last one.
            return stem[..^2] + "d";
        }
        return Measure(stem) == 1 && EndsCvc(stem) ? stem + "e" : stem;
    }

    /// <summary>y → i when the y follows a consonant that is not the word's first letter (NLTK's rule).</summary>
    private static string Step1c(string word)
    {
        if (!word.EndsWith('y'))
        {
            return word;
        }
        string stem = word[..^1];
        return stem.Length > 1 && IsConsonant(stem, stem.Length - 1) ? stem + "i" : word;
    }

    /// <summary>Double suffixes to single ones, (m&gt;0) ational → ate, ... (see <see cref="Step2Rules"/>).</summary>
    private static string Step2(string word)
    {
        // NLTK applies alli → al ahead of the list, then runs step 2 again on the result.
        if (word.EndsWith("alli", StringComparison.Ordinal) && Measure(word[..^4]) > 0)
        {
            return Step2(word[..^4] + "al");
        }
        string result = ApplyFirst(word, Step2Rules, out bool matched);
        if (matched)
        {
            return result;
        }
        // The last rule, logi → log, takes the measure on the stem with its l ("geologi" → "geolog").
        if (word.EndsWith("logi", StringComparison.Ordinal))
        {
            return Measure(word[..^3]) > 0 ? word[..^1] : word;
        }
        return word;
    }

    /// <summary>(m&gt;0) icate → ic, ative → "", alize → al, iciti → ic, ical → ic, ful → "", ness → "".</summary>
    private static string Step3(string word) => ApplyFirst(word, Step3Rules);

    /// <summary>(m&gt;1) removal of al, ance, ence, er, ic, able, ..., ion after s or t, ..., ize.</summary>
    private static string Step4(string word) => ApplyFirst(word, Step4Rules);

    /// <summary>A final e goes when m&gt;1, or when m=1 and the stem does not end *o.</summary>
    private static string Step5a(string word)
    {
        if (!word.EndsWith('e'))
        {
            return word;
        }
        string stem = word[..^1];
        int m = Measure(stem);
        return m > 1 || (m == 1 && !EndsCvc(stem)) ? stem : word;
    }

    /// <summary>A final ll becomes l when the measure of the word less its last letter is above 1.</summary>
    private static string Step5b(string word) =>
        word.EndsWith("ll", StringComparison.Ordinal) && Measure(word[..^1]) > 1 ? word[..^1] : word;

    // ---- Python string semantics ----

    /// <summary>
    /// Python's <c>str.lower()</c>: identical for ASCII; elsewhere invariant simple case mapping, with U+0130
    /// (capital I with dot) becoming "i" plus U+0307 as Python's full case mapping has it.
    /// </summary>
    internal static string PythonLower(string text)
    {
        bool ascii = true;
        foreach (char c in text)
        {
            if (c >= 0x80)
            {
                ascii = false;
                break;
            }
        }
        if (ascii)
        {
            return text.ToLowerInvariant();
        }

        var sb = new StringBuilder(text.Length + 1);
        foreach (Rune rune in text.EnumerateRunes())
        {
            if (rune.Value == 0x130)
            {
                sb.Append("i\u0307");
            }
            else
            {
                sb.Append(Rune.ToLowerInvariant(rune).ToString());
            }
        }
        return sb.ToString();
    }

    private static int CodePointCount(string text)
    {
        int n = text.Length;
        for (int i = 0; i + 1 < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && char.IsLowSurrogate(text[i + 1]))
            {
                n--;
                i++;
            }
        }
        return n;
    }
}
