using System.Globalization;

namespace Forecaster.Planner;

/// <summary>
/// How a policy's stated risk set one hour's load. The forecast quantile q must fit in the replicas at full capacity, and
/// the point forecast at the target utilisation; the planner plans for the larger, expressed as the load that gives that
/// count at the target: max(point, quantile × target). Counting the target on top of the quantile would pay for the same
/// margin twice. q is one per plan (<see cref="PlanQuantile"/>): 1 − fraction, or higher in risk where some hours' point at
/// the target already leaves less risk than the fraction, so that the plan's hours together expect the stated fraction.
/// </summary>
/// <param name="Fraction">The policy's maxUnderProvisionedHoursFraction.</param>
/// <param name="Quantile">The one-sided quantile planned for: 1 − fraction, or lower when the plan's other hours leave risk unspent.</param>
/// <param name="Point">The point forecast.</param>
/// <param name="QuantileLoad">The forecast's quantile: the point plus the band's upper margin scaled from its level to the quantile.</param>
/// <param name="Load">The load planned at the target: max(point, quantile load × target).</param>
/// <param name="QuantileBinds">Whether the quantile (not the point at the target) set the count.</param>
public sealed record RiskChoice(double Fraction, double Quantile, double Point, double QuantileLoad, double Load, bool QuantileBinds)
{
    /// <summary>
    /// The choice for one forecast hour whose band [Lower, Upper] is a central interval at <paramref name="bandLevel"/> (calibrated
    /// from the backtest's residuals in training). The upper margin is rescaled to the quantile with normal quantiles:
    /// margin × z(q) / z((1 + level) / 2); the calibration fixes the width at the band, the normal shape extrapolates from it.
    /// </summary>
    public static RiskChoice For(RiskPolicy risk, ForecastHour hour, double bandLevel, double targetUtilization, double? quantile = null)
    {
        var point = Math.Max(0, hour.Point);
        var margin = Math.Max(0, hour.Upper - hour.Point);
        var q = quantile ?? risk.Quantile;
        var quantileLoad = Math.Max(0, hour.Point + (margin * NormalQuantile(q) / NormalQuantile((1 + bandLevel) / 2)));
        var atTarget = quantileLoad * targetUtilization;
        return new RiskChoice(risk.MaxUnderProvisionedHoursFraction, q, point, quantileLoad, Math.Max(point, atTarget), atTarget > point);
    }

    /// <summary>
    /// The one quantile for a plan's forecast hours, so that the expected share of under-provisioned hours is the stated
    /// fraction f at the capacity actually planned. Each hour's load is taken as normal around the point with σ from its band
    /// (margin / z((1 + level) / 2)); at the count the point needs at the target an hour misses with p₀ = 1 − Φ(point·(1/target − 1)/σ),
    /// at the quantile with 1 − q, and the plan gives it the smaller. Solving mean over hours of min(p₀, u) = f for u gives
    /// q = 1 − u ≤ 1 − f: risk an hour cannot use (its point at the target already covers it) is spent where the band is wide,
    /// instead of being bought twice. With no such hours q = 1 − f. Rounding up to whole replicas only lowers the risk.
    /// </summary>
    public static double PlanQuantile(RiskPolicy risk, IReadOnlyList<(ForecastHour Hour, double TargetUtilization)> hours, double bandLevel)
    {
        var f = risk.MaxUnderProvisionedHoursFraction;
        var z = NormalQuantile((1 + bandLevel) / 2);
        var p0 = new double[hours.Count];
        for (var i = 0; i < hours.Count; i++)
        {
            var (hour, target) = hours[i];
            var point = Math.Max(0, hour.Point);
            var sigma = Math.Max(0, hour.Upper - hour.Point) / z;
            var headroom = point * ((1 / target) - 1);
            p0[i] = sigma > 0 ? NormalTail(headroom / sigma) : headroom >= 0 ? 0 : 1;
        }
        if (p0.Length == 0)
        {
            return 1 - f;
        }
        double Expected(double u) => p0.Sum(p => Math.Min(p, u)) / p0.Length;
        // The quantile stays at or above the median: below it the point at the target binds anyway.
        double lo = f, hi = 0.5;
        if (Expected(hi) <= f)
        {
            return 1 - hi;
        }
        for (var k = 0; k < 60; k++)
        {
            var mid = 0.5 * (lo + hi);
            (lo, hi) = Expected(mid) <= f ? (mid, hi) : (lo, mid);
        }
        return 1 - lo;
    }

    /// <summary>1 − Φ(x), the standard normal upper tail.</summary>
    public static double NormalTail(double x) => 0.5 * Erfc(x / Math.Sqrt(2));

    // Complementary error function, Numerical Recipes' erfcc (Chebyshev fit, fractional error below 1.2e-7).
    private static double Erfc(double x)
    {
        var z = Math.Abs(x);
        var t = 1 / (1 + (0.5 * z));
        ReadOnlySpan<double> c = [0.17087277, -0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806, 0.09678418, 0.37409196, 1.00002368, -1.26551223];
        var r = t * Math.Exp(-(z * z) + Horner(c, t));
        return x >= 0 ? r : 2 - r;
    }

    /// <summary>The sentence's opening, e.g. "forecast quantile 0.995 = 151 at full capacity (risk 0.005 of under-provisioned hours)".</summary>
    public string Describe() => QuantileBinds
        ? string.Create(CultureInfo.InvariantCulture, $"forecast quantile {Quantile:G4} = {QuantileLoad:G6} must fit at full capacity (risk {Fraction:G3} of under-provisioned hours{(Quantile < 1 - Fraction - 1e-12 ? ", the share the plan's other hours leave unused spent here" : "")}), i.e. load {Load:G6} at the target; point {Point:G6}")
        : string.Create(CultureInfo.InvariantCulture, $"forecast point {Point:G6} at the target (its quantile {Quantile:G4} = {QuantileLoad:G6} fits at full capacity: risk {Fraction:G3} met)");

    /// <summary>
    /// The standard normal quantile, Acklam's rational approximation (relative error below 1.2e-9; P. J. Acklam, "An algorithm for
    /// computing the inverse normal cumulative distribution function", 2003).
    /// </summary>
    public static double NormalQuantile(double p)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(p, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(p, 1);
        ReadOnlySpan<double> a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00];
        ReadOnlySpan<double> b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01];
        ReadOnlySpan<double> c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00];
        ReadOnlySpan<double> d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00];
        const double low = 0.02425;
        if (p < low || p > 1 - low)
        {
            var q = Math.Sqrt(-2 * Math.Log(Math.Min(p, 1 - p)));
            var x = Horner(c, q) / ((Horner(d, q) * q) + 1);
            return p < low ? x : -x;
        }
        var r = p - 0.5;
        var s = r * r;
        return Horner(a, s) * r / ((Horner(b, s) * s) + 1);
    }

    // c0·xⁿ⁻¹ + ... + cₙ₋₁
    private static double Horner(ReadOnlySpan<double> coefficients, double x)
    {
        var v = 0.0;
        foreach (var k in coefficients)
        {
            v = (v * x) + k;
        }
        return v;
    }
}
