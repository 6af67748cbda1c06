using System.Globalization;

namespace Flora.Tests.Reporting;

/// <summary>Culture helpers for tests that must not depend on the machine's culture.</summary>
internal static class TestCultures
{
    /// <summary>
    /// de-DE, or (the test project runs with InvariantGlobalization, where real cultures may be
    /// unavailable) an invariant clone with de-DE's number separators: ',' decimal, '.' grouping.
    /// </summary>
    public static CultureInfo German()
    {
        CultureInfo culture;
        try { culture = (CultureInfo)new CultureInfo("de-DE").Clone(); }
        catch (CultureNotFoundException) { culture = (CultureInfo)CultureInfo.InvariantCulture.Clone(); }
        culture.NumberFormat.NumberDecimalSeparator = ",";
        culture.NumberFormat.NumberGroupSeparator = ".";
        return culture;
    }

    /// <summary>Runs <paramref name="action"/> with CurrentCulture and CurrentUICulture set to <paramref name="culture"/>, then restores them.</summary>
    public static T With<T>(CultureInfo culture, Func<T> action)
    {
        CultureInfo oldCulture = CultureInfo.CurrentCulture, oldUi = CultureInfo.CurrentUICulture;
        try
        {
            CultureInfo.CurrentCulture = culture;
            CultureInfo.CurrentUICulture = culture;
            // Make sure the test would notice culture-dependent formatting.
            Assert.Equal("1,5", 1.5.ToString(CultureInfo.CurrentCulture));
            return action();
        }
        finally
        {
            CultureInfo.CurrentCulture = oldCulture;
            CultureInfo.CurrentUICulture = oldUi;
        }
    }
}
