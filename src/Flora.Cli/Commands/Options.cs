using System.CommandLine;
using System.CommandLine.Parsing;
using System.Runtime.CompilerServices;

namespace Flora.Cli.Commands;

/// <summary>
/// Option factories shared by commands. Numbers are read by <see cref="NumberSyntax"/> while the command line is
/// parsed, before any work starts: a bad value is a usage error (exit code 2) whose line names the option and the
/// value. Choices (enums) accept their names only. Every number option keeps its <see cref="NumberRange"/>, so the
/// tests can try values just outside it.
/// </summary>
internal static class Options
{
    private static readonly ConditionalWeakTable<Option, NumberRange> Ranges = new();

    /// <summary>The range a number option accepts; null for options that are not numbers.</summary>
    public static NumberRange? RangeOf(Option option) => Ranges.TryGetValue(option, out var range) ? range : null;

    public static Option<int> PositiveInt(string name, string description, int defaultValue) => Int(name, description, defaultValue, NumberRange.Positive);

    public static Option<int> NonNegativeInt(string name, string description, int defaultValue) => Int(name, description, defaultValue, NumberRange.NonNegative);

    public static Option<int> Int(string name, string description, int defaultValue, NumberRange range) =>
        Register(new Option<int>(name) { Description = description, DefaultValueFactory = _ => defaultValue, CustomParser = r => One(r, name, range, NumberSyntax.ParseInt) }, range);

    /// <summary>An integer that is null unless given.</summary>
    public static Option<int?> OptionalInt(string name, string description, NumberRange range) =>
        Register(new Option<int?>(name) { Description = description, CustomParser = r => One(r, name, range, NumberSyntax.ParseInt) }, range);

    /// <summary>Several integers (<c>--ranks 8 32</c>), each in <paramref name="range"/>.</summary>
    public static Option<int[]> Ints(string name, string description, NumberRange range, int[]? defaultValue = null)
    {
        var option = new Option<int[]>(name)
        {
            Description = description, AllowMultipleArgumentsPerToken = true,
            CustomParser = r => r.Tokens.Select(t => NumberSyntax.ParseInt(name, t.Value, range, out string? e) is int v && e is null ? v : Fail<int>(r, e!)).ToArray(),
        };
        if (defaultValue is not null) option.DefaultValueFactory = _ => defaultValue;
        return Register(option, range);
    }

    /// <summary>Several numbers (<c>--naive-lrs 0.01 0.03</c>), each in <paramref name="range"/>.</summary>
    public static Option<float[]> Floats(string name, string description, NumberRange range) =>
        Register(new Option<float[]>(name)
        {
            Description = description, AllowMultipleArgumentsPerToken = true,
            CustomParser = r => r.Tokens.Select(t => NumberSyntax.ParseFloat(name, t.Value, range, out string? e) is float v && e is null ? v : Fail<float>(r, e!)).ToArray(),
        }, range);

    public static Option<float> PositiveFloat(string name, string description, float defaultValue) => Float(name, description, defaultValue, NumberRange.Positive);

    public static Option<float> Float(string name, string description, float defaultValue, NumberRange range) =>
        Register(new Option<float>(name) { Description = description, DefaultValueFactory = _ => defaultValue, CustomParser = r => One(r, name, range, NumberSyntax.ParseFloat) }, range);

    /// <summary>A number that is null unless given.</summary>
    public static Option<float?> OptionalFloat(string name, string description, NumberRange range) =>
        Register(new Option<float?>(name) { Description = description, CustomParser = r => One(r, name, range, NumberSyntax.ParseFloat) }, range);

    /// <summary>A seed: an integer from 0 to 2^64 - 1.</summary>
    public static Option<ulong> Seed(string name, string description, ulong defaultValue) =>
        Register(new Option<ulong>(name) { Description = description, DefaultValueFactory = _ => defaultValue, CustomParser = r => One(r, name, NumberRange.Seed, NumberSyntax.ParseSeed) }, NumberRange.Seed);

    /// <summary>One of the names of <typeparamref name="T"/> (any case); numbers and combinations are refused.</summary>
    public static Option<T> Choice<T>(string name, string description, T defaultValue) where T : struct, Enum =>
        new(name) { Description = description, DefaultValueFactory = _ => defaultValue, CustomParser = r => OneChoice<T>(r, name) };

    /// <summary>Several names of <typeparamref name="T"/>.</summary>
    public static Option<T[]> Choices<T>(string name, string description) where T : struct, Enum =>
        new(name)
        {
            Description = description, AllowMultipleArgumentsPerToken = true,
            CustomParser = r => r.Tokens.Select(t => NumberSyntax.ParseChoice<T>(name, t.Value, out string? e) is T v && e is null ? v : Fail<T>(r, e!)).ToArray(),
        };

    private delegate T? Parser<T>(string name, string text, NumberRange range, out string? error) where T : struct;

    private static T One<T>(ArgumentResult r, string name, NumberRange range, Parser<T> parse) where T : struct
    {
        if (r.Tokens.Count != 1) return Fail<T>(r, $"{name} needs one value, got {r.Tokens.Count}");
        return parse(name, r.Tokens[0].Value, range, out string? error) is T v && error is null ? v : Fail<T>(r, error!);
    }

    private static T OneChoice<T>(ArgumentResult r, string name) where T : struct, Enum
    {
        if (r.Tokens.Count != 1) return Fail<T>(r, $"{name} needs one value, got {r.Tokens.Count}");
        return NumberSyntax.ParseChoice<T>(name, r.Tokens[0].Value, out string? error) is T v && error is null ? v : Fail<T>(r, error!);
    }

    private static T Fail<T>(ArgumentResult r, string error)
    {
        r.AddError(error);
        return default!;
    }

    private static Option<T> Register<T>(Option<T> option, NumberRange range)
    {
        Ranges.Add(option, range);
        return option;
    }
}
