namespace Flora.Experiments.Reproduce;

/// <summary>A row of one of the paper's tables: memory (GiB), Delta_M, and its score as printed.</summary>
public sealed record PaperRow(string Label, string Memory, string DeltaM, string Score);

/// <summary>The paper's numbers (ICML 2024, Tables 1 to 4), for the side-by-side columns of our tables.</summary>
public static class PaperNumbers
{
    private static PaperRow[] Rows(params string[] lines) => lines.Select(l =>
    {
        var f = l.Split('|');
        return new PaperRow(f[0], f[1], f[2], f[3]);
    }).ToArray();

    /// <summary>Table 1(b): GPT-2 110M on IWSLT17 De-En, fine-tuned with 16 accumulation steps; BLEU.</summary>
    public static readonly PaperRow[] Table1Gpt2 = Rows(
        "None|2.77|-|17.9", "Naive|3.24|0.47|24.9", "LoRA(8)|3.25|0.48|9.94", "LoRA(32)|3.29|0.52|11.2", "LoRA(128)|3.38|0.60|12.2",
        "LoRA(256)|3.52|0.75|13.4", "Flora(8)|2.93|0.15|16.3", "Flora(32)|2.94|0.16|22.0", "Flora(128)|2.98|0.20|24.0", "Flora(256)|3.03|0.26|25.4");

    /// <summary>Table 2: GPT-2 110M on IWSLT17, momentum, from scratch; BLEU (Delta_M computed from the printed memory).</summary>
    public static readonly PaperRow[] Table2Gpt2 = Rows(
        "None|8.95|-|19.4", "Naive|9.45|0.50|19.9", "LoRA(8)|9.42|0.47|4.98", "LoRA(32)|9.46|0.51|6.76", "LoRA(128)|9.55|0.60|8.72",
        "LoRA(256)|9.76|0.81|9.83", "Flora(8)|9.09|0.14|9.14", "Flora(32)|9.10|0.15|14.9", "Flora(128)|9.14|0.19|18.6", "Flora(256)|9.20|0.25|19.9");

    /// <summary>Table 2: T5 60M on XSum, momentum, from scratch; ROUGE-1/2/L.</summary>
    public static readonly PaperRow[] Table2T5 = Rows(
        "None|1.65|-|29.4/9.11/23.3", "Naive|1.89|0.24|29.9/9.40/23.8", "LoRA(8)|1.88|0.23|18.0/3.33/14.9", "LoRA(32)|1.91|0.26|20.4/4.20/16.7",
        "LoRA(128)|2.05|0.40|21.5/4.82/17.4", "LoRA(256)|2.13|0.48|22.2/5.04/17.9", "Flora(8)|1.71|0.06|25.5/6.56/20.4", "Flora(32)|1.72|0.07|26.9/7.32/21.5",
        "Flora(128)|1.75|0.10|29.1/8.76/23.2", "Flora(256)|1.79|0.14|30.2/9.51/24.0");

    /// <summary>Table 3: T5 60M on XSum, FLORA(256) momentum with resampling interval kappa; ROUGE-1/2/L (kappa 1000 is Table 2's Flora(256)).</summary>
    public static readonly PaperRow[] Table3T5 = Rows(
        "kappa=1|1.79||0.00/0.00/0.00", "kappa=10|1.79||0.00/0.00/0.00", "kappa=100|1.79||29.3/8.89/23.2", "kappa=1000|1.79||30.2/9.51/24.0",
        "kappa=10000|1.79||29.5/9.11/23.5");

    /// <summary>Table 4: T5 60M on XSum, unfactored (linear-memory) Adafactor with accumulation; ROUGE-1/2/L.</summary>
    public static readonly PaperRow[] Table4T5 = Rows(
        "None|0.99|-|33.0/11.1/26.1", "Naive|1.12|0.13|34.0/11.5/26.7", "LoRA(8)|0.82|-0.17|28.7/7.51/22.0", "LoRA(32)|0.86|-0.13|29.0/7.71/22.3",
        "LoRA(128)|1.00|0.01|29.7/8.02/22.9", "LoRA(256)|1.20|0.21|30.0/8.28/23.2", "Flora(8)|1.00|0.01|31.6/9.72/24.7", "Flora(32)|1.00|0.01|32.3/10.3/25.3",
        "Flora(128)|1.00|0.01|33.2/10.9/26.0", "Flora(256)|1.04|0.05|33.5/11.1/26.3");

    public static PaperRow? Find(IReadOnlyList<PaperRow> rows, string label) => rows.FirstOrDefault(r => r.Label == label);
}
