using System.Globalization;

namespace Flora.Reporting;

/// <summary>
/// One axis of a chart: its range, the labelled ("major") tick values with their labels, and
/// unlabelled minor grid values (log axes only). Built by <see cref="Linear"/> or <see cref="Log"/>.
/// </summary>
internal sealed class ChartAxis
{
    private ChartAxis(double min, double max, bool isLog, double[] ticks, string[] labels, double[] minorTicks)
    {
        Min = min;
        Max = max;
        IsLog = isLog;
        Ticks = ticks;
        Labels = labels;
        MinorTicks = minorTicks;
    }

    /// <summary>Lower end of the axis in data units.</summary>
    public double Min { get; }

    /// <summary>Upper end of the axis in data units (always greater than <see cref="Min"/>).</summary>
    public double Max { get; }

    public bool IsLog { get; }

    /// <summary>Labelled tick values, ascending, all within [Min, Max].</summary>
    public double[] Ticks { get; }

    /// <summary>Labels of <see cref="Ticks"/>, invariant culture.</summary>
    public string[] Labels { get; }

    /// <summary>Unlabelled grid values (2..9 × 10^k on log axes spanning few decades).</summary>
    public double[] MinorTicks { get; }

    /// <summary>Position of <paramref name="value"/> along the axis: 0 at Min, 1 at Max.</summary>
    public double Fraction(double value) => IsLog
        ? (Math.Log10(value) - Math.Log10(Min)) / (Math.Log10(Max) - Math.Log10(Min))
        : (value - Min) / (Max - Min);

    // ---------------------------------------------------------------- linear

    /// <summary>
    /// A linear axis with ticks at multiples of 1, 2 or 5 × 10^k. Ends that are not fixed are
    /// widened to the enclosing ticks; fixed ends are kept exactly and only the ticks inside are
    /// labelled. A degenerate range (min == max, or no data) is widened around the value.
    /// </summary>
    /// <param name="dataMin">Smallest data value, or NaN when there is no data.</param>
    /// <param name="dataMax">Largest data value, or NaN when there is no data.</param>
    /// <param name="fixedMin">Fixed lower end, or null to follow the data.</param>
    /// <param name="fixedMax">Fixed upper end, or null to follow the data.</param>
    /// <param name="targetTicks">About how many intervals between ticks are wanted.</param>
    public static ChartAxis Linear(double dataMin, double dataMax, double? fixedMin, double? fixedMax, int targetTicks)
    {
        if (fixedMin is { } fmin && !double.IsFinite(fmin)) fixedMin = null;
        if (fixedMax is { } fmax && !double.IsFinite(fmax)) fixedMax = null;
        if (fixedMin > fixedMax)
            throw new InvalidOperationException($"The fixed axis range is empty: minimum {fixedMin} is above maximum {fixedMax}.");
        targetTicks = Math.Max(1, targetTicks);

        bool hasData = double.IsFinite(dataMin) && double.IsFinite(dataMax);
        double lo = fixedMin ?? (hasData ? dataMin : (fixedMax is { } m1 ? m1 - 1 : 0));
        double hi = fixedMax ?? (hasData ? dataMax : (fixedMin is { } m2 ? m2 + 1 : 1));

        // Degenerate or inverted ranges (only possible when at most one end is fixed, or both
        // fixed ends are equal): widen around the value that is known.
        double scale = Math.Max(Math.Abs(lo), Math.Abs(hi));
        if (!(hi - lo > scale * 1e-12))
        {
            if (fixedMin.HasValue && !fixedMax.HasValue) hi = lo + 2 * Pad(lo);
            else if (fixedMax.HasValue && !fixedMin.HasValue) lo = hi - 2 * Pad(hi);
            else
            {
                double centre = fixedMin ?? (lo + hi) / 2;
                double pad = Pad(centre);
                lo = centre - pad;
                hi = centre + pad;
                fixedMin = fixedMax = null; // let the widened range snap to nice ticks
            }
        }

        // (hi / n - lo / n) cannot overflow even for ±double.MaxValue.
        (double mantissa, int exponent) = NiceStep(hi / targetTicks - lo / targetTicks);
        double step = Compose(1, mantissa, exponent);

        const double eps = 1e-9;
        double first = fixedMin.HasValue ? Math.Ceiling(lo / step - eps) : Math.Floor(lo / step + eps);
        double last = fixedMax.HasValue ? Math.Floor(hi / step + eps) : Math.Ceiling(hi / step - eps);
        double min = fixedMin ?? Compose(first, mantissa, exponent);
        double max = fixedMax ?? Compose(last, mantissa, exponent);

        var ticks = new List<double>();
        for (double i = first; i <= last && ticks.Count <= 1000; i++)
        {
            double v = Compose(i, mantissa, exponent);
            if (double.IsFinite(v)) ticks.Add(v);
        }
        if (!(max > min) || !double.IsFinite(min) || !double.IsFinite(max))
        {
            // Only for absurd inputs (values near double.MaxValue): fall back to the raw range.
            min = lo;
            max = hi;
        }
        double[] tickArray = ticks.ToArray();
        return new ChartAxis(min, max, false, tickArray, FormatTicks(tickArray, step), Array.Empty<double>());
    }

    private static double Pad(double v) => v == 0 ? 1 : Math.Abs(v) * 0.1;

    /// <summary>Rounds <paramref name="raw"/> to 1, 2 or 5 × 10^exponent (choosing the nearest in log terms).</summary>
    internal static (double Mantissa, int Exponent) NiceStep(double raw)
    {
        if (!(raw > 0) || !double.IsFinite(raw)) return (1, 0);
        int exponent = (int)Math.Floor(Math.Log10(raw));
        double fraction = raw / Math.Pow(10, exponent);
        double mantissa;
        if (fraction < 1.5) mantissa = 1;
        else if (fraction < 3.5) mantissa = 2;
        else if (fraction < 7.5) mantissa = 5;
        else { mantissa = 1; exponent++; }
        return (mantissa, exponent);
    }

    /// <summary>
    /// i × mantissa × 10^exponent, computed so that tick values carry no binary noise
    /// (0.3 rather than 0.30000000000000004): dividing by an exact power of ten is correctly rounded.
    /// </summary>
    private static double Compose(double i, double mantissa, int exponent) =>
        exponent >= 0 ? i * mantissa * Math.Pow(10, exponent) : i * mantissa / Math.Pow(10, -exponent);

    // ---------------------------------------------------------------- log10

    /// <summary>
    /// A log10 axis with labelled ticks at powers of ten (every k-th decade when there are many).
    /// Non-positive fixed ends are ignored. When the range lies inside one decade and contains at
    /// most one power of ten, 1-2-5 values (then 1..9) are labelled instead.
    /// </summary>
    /// <param name="dataMin">Smallest positive data value, or NaN when there is none.</param>
    /// <param name="dataMax">Largest positive data value, or NaN when there is none.</param>
    /// <param name="fixedMin">Fixed lower end, or null (or ≤ 0) to follow the data.</param>
    /// <param name="fixedMax">Fixed upper end, or null (or ≤ 0) to follow the data.</param>
    /// <param name="targetTicks">About how many labelled decades are wanted at most.</param>
    public static ChartAxis Log(double dataMin, double dataMax, double? fixedMin, double? fixedMax, int targetTicks)
    {
        if (!(fixedMin > 0) || !double.IsFinite(fixedMin.Value)) fixedMin = null;
        if (!(fixedMax > 0) || !double.IsFinite(fixedMax.Value)) fixedMax = null;
        if (fixedMin > fixedMax)
            throw new InvalidOperationException($"The fixed axis range is empty: minimum {fixedMin} is above maximum {fixedMax}.");
        targetTicks = Math.Max(1, targetTicks);

        bool hasData = dataMin > 0 && dataMax > 0 && double.IsFinite(dataMin) && double.IsFinite(dataMax);
        double lo = fixedMin ?? (hasData ? dataMin : (fixedMax is { } m1 ? m1 / 10 : 1));
        double hi = fixedMax ?? (hasData ? dataMax : (fixedMin is { } m2 ? m2 * 10 : 10));

        if (!(hi > lo * (1 + 1e-12)))
        {
            if (fixedMin.HasValue && !fixedMax.HasValue) hi = lo * 10;
            else if (fixedMax.HasValue && !fixedMin.HasValue) lo = hi / 10;
            else
            {
                // One value: show the decade around it (a power of ten gets the decades either side).
                double centre = fixedMin ?? lo;
                lo = centre / Math.Sqrt(10);
                hi = centre * Math.Sqrt(10);
                fixedMin = fixedMax = null;
            }
        }

        const double eps = 1e-9;
        double logLo = Math.Log10(lo), logHi = Math.Log10(hi);
        int kLo = (int)(fixedMin.HasValue ? Math.Ceiling(logLo - eps) : Math.Floor(logLo + eps));
        int kHi = (int)(fixedMax.HasValue ? Math.Floor(logHi + eps) : Math.Ceiling(logHi - eps));
        if (!fixedMin.HasValue && !fixedMax.HasValue && kHi == kLo) kHi++;
        kLo = Math.Clamp(kLo, -307, 307);
        kHi = Math.Clamp(kHi, kLo + (fixedMin.HasValue || fixedMax.HasValue ? 0 : 1), 308);
        int every = NiceInteger((int)Math.Ceiling((kHi - kLo) / (double)targetTicks));
        int origin = 0;
        if (every > 1)
        {
            // Snap free ends to labelled decades so the axis starts and ends on a label
            // (unless that would leave the range of double).
            int snappedLo = (int)Math.Floor(kLo / (double)every) * every;
            int snappedHi = (int)Math.Ceiling(kHi / (double)every) * every;
            if (!fixedMin.HasValue)
            {
                if (snappedLo >= -307) kLo = snappedLo;
                else origin = kLo;
            }
            if (!fixedMax.HasValue && snappedHi <= 308) kHi = snappedHi;
        }
        int decades = kHi - kLo;
        double min = fixedMin ?? Pow10(kLo);
        double max = fixedMax ?? Pow10(kHi);

        var ticks = new List<double>();
        for (int k = kLo; k <= kHi; k++)
            if (Mod(k - origin, every) == 0)
                ticks.Add(Pow10(k));

        var minor = new List<double>();
        if (ticks.Count < 2)
        {
            // Less than a decade between fixed ends: label 1-2-5 values, or all of 1..9.
            ticks = InRange(min, max, kLo - 1, kHi, new[] { 1.0, 2, 5 });
            if (ticks.Count < 3) ticks = InRange(min, max, kLo - 1, kHi, new[] { 1.0, 2, 3, 4, 5, 6, 7, 8, 9 });
        }
        else if (every == 1 && decades <= 6)
        {
            minor = InRange(min, max, kLo - 1, kHi, new[] { 2.0, 3, 4, 5, 6, 7, 8, 9 });
        }

        double[] tickArray = ticks.ToArray();
        string[] labels = FormatLogTicks(tickArray);
        return new ChartAxis(min, max, true, tickArray, labels, minor.ToArray());
    }

    private static List<double> InRange(double min, double max, int kFrom, int kTo, double[] mantissas)
    {
        var values = new List<double>();
        for (int k = kFrom; k <= kTo; k++)
            foreach (double m in mantissas)
            {
                double v = k >= 0 ? m * Pow10(k) : m / Pow10(-k);
                if (v >= min * (1 - 1e-12) && v <= max * (1 + 1e-12)) values.Add(v);
            }
        return values;
    }

    /// <summary>Smallest of 1, 2, 3, 5, 10, 20, 50, 100, ... that is at least <paramref name="n"/>.</summary>
    private static int NiceInteger(int n)
    {
        if (n <= 3) return Math.Max(1, n);
        for (int power = 1; ; power *= 10)
            foreach (int m in new[] { 1, 2, 5 })
                if (m * power >= n) return m * power;
    }

    private static int Mod(int a, int b) => ((a % b) + b) % b;

    private static double Pow10(int k) => k >= 0 ? Math.Pow(10, k) : 1 / Math.Pow(10, -k);

    // ---------------------------------------------------------------- labels

    /// <summary>
    /// Labels for linear ticks spaced <paramref name="step"/> apart: plain decimals, all with the
    /// same number of decimals, just enough for the step ("0.0 0.5 1.0", "0 500 1000").
    /// Scientific notation only where plain numbers get hard to read: below 1 when the step needs
    /// four or more decimals ("2e-4", "2.5e-4"), and from seven digits on when it is at least two
    /// characters shorter ("1e6", "2.5e6", but "250000").
    /// </summary>
    internal static string[] FormatTicks(double[] ticks, double step)
    {
        int stepExponent = (int)Math.Floor(Math.Log10(step) + 1e-9);
        var plain = new string[ticks.Length];
        var scientific = new string[ticks.Length];
        for (int i = 0; i < ticks.Length; i++)
        {
            double v = Math.Abs(ticks[i]) < step * 1e-6 ? 0 : ticks[i];
            plain[i] = FormatPlain(v, stepExponent);
            scientific[i] = v == 0 ? "0" : FormatScientific(v, stepExponent);
        }
        return Choose(ticks, stepExponent, plain, scientific);
    }

    /// <summary>Labels for log-axis ticks; every label shows its own significant digits.</summary>
    internal static string[] FormatLogTicks(double[] ticks)
    {
        var plain = new string[ticks.Length];
        var scientific = new string[ticks.Length];
        int smallestExponent = int.MaxValue;
        for (int i = 0; i < ticks.Length; i++)
        {
            int exponent = (int)Math.Floor(Math.Log10(ticks[i]) + 1e-9);
            smallestExponent = Math.Min(smallestExponent, exponent);
            plain[i] = FormatPlain(ticks[i], exponent);
            scientific[i] = FormatScientific(ticks[i], exponent);
        }
        return Choose(ticks, smallestExponent, plain, scientific);
    }

    private static string[] Choose(double[] ticks, int finestExponent, string[] plain, string[] scientific)
    {
        if (ticks.Length == 0) return plain;
        int plainLength = plain.Max(s => s.Length);
        int scientificLength = scientific.Max(s => s.Length);
        double largest = ticks.Max(Math.Abs);
        bool tiny = largest < 1 && finestExponent <= -4;
        bool huge = plainLength >= 7 && scientificLength + 2 <= plainLength;
        return tiny || huge ? scientific : plain;
    }

    private static string FormatPlain(double value, int stepExponent)
    {
        int decimals = Math.Clamp(-stepExponent, 0, 15);
        string s = value.ToString("F" + decimals.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
        return IsNegativeZero(s) ? s[1..] : s;
    }

    private static string FormatScientific(double value, int stepExponent)
    {
        int exponent = (int)Math.Floor(Math.Log10(Math.Abs(value)) + 1e-9);
        int decimals = Math.Clamp(exponent - stepExponent, 0, 15);
        double mantissa = value / Math.Pow(10, exponent);
        string m = mantissa.ToString("F" + decimals.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
        if (m.Contains('.', StringComparison.Ordinal)) m = m.TrimEnd('0').TrimEnd('.');
        if (m is "10" or "-10")
        {
            // Rounding carried into the next power: 9.99e3 -> 1e4.
            exponent++;
            m = value < 0 ? "-1" : "1";
        }
        return exponent == 0 ? m : m + "e" + exponent.ToString(CultureInfo.InvariantCulture);
    }

    private static bool IsNegativeZero(string s) => s.Length > 1 && s[0] == '-' && s.AsSpan(1).Trim("0.").IsEmpty;
}
