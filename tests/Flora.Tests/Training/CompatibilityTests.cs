using System.Globalization;

namespace Flora.Tests.Training;

/// <summary>Nothing is lost: runs written by earlier versions of Flora still resume, with the same numbers.</summary>
public sealed class CompatibilityTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("flora-compat-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    [Fact]
    public void A_run_written_before_the_package_split_resumes_with_the_loss_that_version_computed()
    {
        // Fixtures/run-before-split: 3 steps of FLORA with compressed accumulation, by the version before the split
        // (optimizer type "Flora", enums as numbers in the options); resumed there to step 4 it logged resumed-step-4.csv.
        string fixture = Path.Combine(AppContext.BaseDirectory, "Fixtures", "run-before-split");
        string run = Path.Combine(_temp, "run");
        CopyDirectory(fixture, run);

        var (code, _, error) = TestCli.RunCli("train", "--resume", run, "--steps", "4");
        Assert.True(code == 0, error);

        string expected = File.ReadAllText(Path.Combine(fixture, "resumed-step-4.csv")).Trim();
        var rows = File.ReadAllLines(Path.Combine(run, "metrics.csv"));
        var header = rows[0].Split(',');
        var step4 = rows.Select(r => r.Split(',')).Single(r => r[Array.IndexOf(header, "step")] == "4");
        double Loss(string[] fields) => double.Parse(fields[Array.IndexOf(header, "train_loss")], CultureInfo.InvariantCulture);
        Assert.Equal(Loss(expected.Split(',')), Loss(step4));                 // bit for bit
    }

    private static void CopyDirectory(string from, string to)
    {
        foreach (string dir in Directory.GetDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, dir)));
        Directory.CreateDirectory(to);
        foreach (string file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
            File.Copy(file, Path.Combine(to, Path.GetRelativePath(from, file)));
    }
}
