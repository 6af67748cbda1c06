using System.Reflection;
using Flora.Tests.Architecture.Fixture.Low;

namespace Flora.Tests.Architecture;

/// <summary>
/// Namespaces depend only downward (architecture.md): a type may refer to types of its own namespace and of lower
/// layers, never of a layer at its level or above. Read from the compiled assemblies, so every reference counts
/// (signatures, fields, locals and the IL of method bodies), not only <c>using</c> lines.
/// </summary>
public sealed class LayeringTests
{
    /// <summary>
    /// The layers, lowest first. Namespaces on one line are siblings: neither may refer to the other.
    /// Tensors &lt;- Backends &lt;- Nn &lt;- Optim &lt;- Training &lt;- Experiments &lt;- Cli.
    /// </summary>
    public static readonly string[][] Layers =
    [
        ["Flora"],                                                  // FloraException
        ["Flora.Reporting", "Flora.Metrics", "Flora.Tensors"],      // files and charts, BLEU/ROUGE, tensors and memory
        ["Flora.Backends"],                                         // the kernel surface, Philox, seeds
        ["Flora.Backends.Cpu", "Flora.Backends.Cuda"],              // its implementations
        ["Flora.Devices", "Flora.Checkpoints"],                     // choosing a backend; safetensors
        ["Flora.Data.Tokenizers", "Flora.Data.Corpora"],
        ["Flora.Data"],
        ["Flora.Nn"],
        ["Flora.Nn.Models"],
        ["Flora.Optim"],
        ["Flora.Distributed"],                                      // communicators, rendezvous, the gradient reducer
        ["Flora.Training"],
        ["Flora.Experiments.Bible"],                                // preparing the Bible corpora
        ["Flora.Experiments"],
        ["Flora.Experiments.Reproduce"],
        ["Flora.Cli.Commands"],
        ["Flora.Cli"],
    ];

    private static readonly Dictionary<string, int> LayerOf = Layers
        .SelectMany((names, level) => names.Select(n => (n, level)))
        .ToDictionary(x => x.n, x => x.level);

    public static TheoryData<string> Assemblies => new() { "Flora", "Flora.Experiments", "Flora.Cli" };

    [Theory]
    [MemberData(nameof(Assemblies))]
    public void No_type_refers_to_a_layer_at_or_above_its_own(string assemblyName)
    {
        var assembly = Assembly.Load(assemblyName);
        var unknown = assembly.GetTypes().Select(t => t.Namespace).Where(IsFlora).Distinct()
            .Where(n => !LayerOf.ContainsKey(n!)).ToArray();
        Assert.True(unknown.Length == 0, $"namespaces missing from LayeringTests.Layers: {string.Join(", ", unknown)}");

        var upward = Violations(assembly, LayerOf).ToArray();
        Assert.True(upward.Length == 0, "references that run upward or sideways:\n" + string.Join("\n", upward));
    }

    [Fact]
    public void The_check_finds_an_upward_reference_in_a_method_body()
    {
        // Fixture.Low.UsesHigh calls into Fixture.High only inside a method body: the check must see it.
        var layers = new Dictionary<string, int>
        {
            [typeof(UsesHigh).Namespace!] = 0,
            [typeof(Fixture.High.Target).Namespace!] = 1,
        };
        var found = Violations(typeof(UsesHigh).Assembly, layers).ToArray();
        Assert.Contains(found, v => v.Contains(nameof(UsesHigh)) && v.Contains(nameof(Fixture.High.Target)));
        Assert.DoesNotContain(found, v => v.StartsWith(typeof(Fixture.High.Target).FullName!, StringComparison.Ordinal));
    }

    /// <summary>"From -> To (layer a -> b)" for each reference from a namespace to one of the same or a higher layer.</summary>
    internal static IEnumerable<string> Violations(Assembly assembly, IReadOnlyDictionary<string, int> layers) =>
        TypeReferences.Of(assembly)
            .Where(r => r.From.Namespace is { } f && r.To.Namespace is { } t && f != t &&
                        layers.TryGetValue(f, out int lf) && layers.TryGetValue(t, out int lt) && lt >= lf)
            .Select(r => $"{r.From.FullName} -> {r.To.FullName}")
            .Distinct()
            .Order(StringComparer.Ordinal);

    private static bool IsFlora(string? ns) => ns is not null && (ns == "Flora" || ns.StartsWith("Flora.", StringComparison.Ordinal))
                                               && !ns.StartsWith("Flora.Tests", StringComparison.Ordinal);
}
