using System.CommandLine;

namespace Flora.Cli.Commands;

/// <summary>Option factories shared by commands, with their validation.</summary>
internal static class Options
{
    public static Option<int> PositiveInt(string name, string description, int defaultValue)
    {
        var option = new Option<int>(name) { Description = description, DefaultValueFactory = _ => defaultValue };
        option.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() <= 0) r.AddError($"{name} must be positive, got {r.GetValueOrDefault<int>()}");
        });
        return option;
    }

    public static Option<float> PositiveFloat(string name, string description, float defaultValue)
    {
        var option = new Option<float>(name) { Description = description, DefaultValueFactory = _ => defaultValue };
        option.Validators.Add(r =>
        {
            float v = r.GetValueOrDefault<float>();
            if (!(v > 0) || !float.IsFinite(v)) r.AddError($"{name} must be positive, got {v}");
        });
        return option;
    }
}
