using Flora.Backends;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Flora.Cli.Commands;

/// <summary>
/// The values a number option accepts: from <see cref="Min"/> to <see cref="Max"/>, each end included or not.
/// <see cref="Rule"/> is how an error message states it.
/// </summary>
internal sealed record NumberRange(double Min, bool MinIncluded, double Max, bool MaxIncluded, string Rule)
{
    /// <summary>Greater than zero.</summary>
    public static NumberRange Positive { get; } = new(0, false, double.PositiveInfinity, false, "must be positive");
    /// <summary>Zero or more.</summary>
    public static NumberRange NonNegative { get; } = new(0, true, double.PositiveInfinity, false, "must be 0 or more");
    /// <summary>From 0 (included) to 1 (excluded): probabilities of dropping, decay rates.</summary>
    public static NumberRange Fraction { get; } = new(0, true, 1, false, "must be in [0, 1)");
    /// <summary>Any finite number.</summary>
    public static NumberRange Finite { get; } = new(double.NegativeInfinity, false, double.PositiveInfinity, false, "must be finite");
    /// <summary>Seeds: 0 to 2^64 - 1.</summary>
    public static NumberRange Seed { get; } = new(0, true, ulong.MaxValue, true, $"must be from 0 to {ulong.MaxValue}");

    public bool Contains(double v) => (MinIncluded ? v >= Min : v > Min) && (MaxIncluded ? v <= Max : v < Max);
}

/// <summary>
/// Strict reading of numbers on the command line, the same on every machine: digits, an optional sign, a decimal
/// point and an exponent (invariant culture). Commas (a decimal comma or a thousands separator), infinities, NaN,
/// hexadecimal and values that overflow their type are refused; each error names the option and the value.
/// </summary>
internal static partial class NumberSyntax
{
    [GeneratedRegex(@"^[+-]?[0-9]+$")]
    private static partial Regex IntegerPattern();

    [GeneratedRegex(@"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")]
    private static partial Regex DecimalPattern();

    public static int? ParseInt(string name, string text, NumberRange range, out string? error)
    {
        if (!Shape(name, text, IntegerPattern(), "an integer", out error)) return null;
        if (!long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v) || v is > int.MaxValue or < int.MinValue)
        {
            error = $"{name} '{text}' is out of range: an integer from {int.MinValue} to {int.MaxValue} is expected";
            return null;
        }
        return InRange(name, text, (int)v, range, out error) ? (int)v : null;
    }

    public static float? ParseFloat(string name, string text, NumberRange range, out string? error)
    {
        if (!Shape(name, text, DecimalPattern(), "a number", out error)) return null;
        float v = (float)double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
        if (!float.IsFinite(v))
        {
            error = $"{name} '{text}' is out of range for a single-precision number (at most about 3.4e38)";
            return null;
        }
        return InRange(name, text, v, range, out error) ? v : null;
    }

    public static ulong? ParseSeed(string name, string text, NumberRange range, out string? error)
    {
        if (!Shape(name, text, IntegerPattern(), "an integer", out error)) return null;
        if (text.StartsWith('-') || !ulong.TryParse(text.TrimStart('+'), NumberStyles.None, CultureInfo.InvariantCulture, out ulong v))
        {
            error = $"{name} '{text}' {range.Rule}";
            return null;
        }
        return v;
    }

    /// <summary>One of the names of <typeparamref name="T"/>, in any case.</summary>
    public static T? ParseChoice<T>(string name, string text, out string? error) where T : struct, Enum
    {
        foreach (string candidate in Enum.GetNames<T>())
            if (string.Equals(candidate, text, StringComparison.OrdinalIgnoreCase))
            {
                error = null;
                return Enum.Parse<T>(candidate);
            }
        error = $"{name} '{text}' is not one of: {string.Join(", ", Enum.GetNames<T>().Select(n => n.ToLowerInvariant()))}";
        return null;
    }

    /// <summary>Checks the characters of <paramref name="text"/>, with a hint for the usual mistakes.</summary>
    private static bool Shape(string name, string text, Regex pattern, string expected, out string? error)
    {
        error = null;
        if (pattern.IsMatch(text)) return true;
        string t = text.Trim().TrimStart('+', '-').ToLowerInvariant();
        error = text.Length == 0 ? $"{name} needs a value, got an empty string"
            : text.StartsWith("--", StringComparison.Ordinal) ? $"{name} needs a value, got the option '{text}'"
            : text.Contains(',') ? $"{name} '{text}' has a comma: write numbers with a decimal point and no thousands separators (0.001, 1000)"
            : t is "inf" or "infinity" or "nan" or "∞" ? $"{name} '{text}' is not a finite number"
            : expected == "an integer" && DecimalPattern().IsMatch(text) ? $"{name} '{text}' is not an integer"
            : $"{name} '{text}' is not {expected}";
        return false;
    }

    private static bool InRange(string name, string text, double v, NumberRange range, out string? error)
    {
        error = range.Contains(v) ? null : $"{name} {range.Rule}, got {text}";
        return error is null;
    }
}
