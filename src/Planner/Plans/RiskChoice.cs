using System.Globalization;

namespace Forecaster.Planner;

/// <summary>One forecast hour as <see cref="RiskChoice.PlanQuantile"/> sees it: its band, target and lower bound (minReplicas or a window's).</summary>
public readonly record struct RiskHour(ForecastHour Hour, double TargetUtilization, int Lower);

/// <summary>
/// How a policy's stated risk set one hour's load. The forecast quantile q must fit in the replicas at full capacity, and
/// the point forecast at the target utilisation; the planner plans for the larger, expressed as the load that gives that
/// count at the target: max(point, quantile × target). Counting the target on top of the quantile would pay for the same
/// margin twice. q is one per plan (<see cref="PlanQuantile"/>): 1 − fraction, or higher in risk where some hours' point at
/// the target, their whole replicas or their minimum already leave less risk than the fraction, so that the plan's hours
/// together expect the stated fraction at the counts planned.
/// </summary>
/// <param name="Fraction">The policy's maxUnderProvisionedHoursFraction.</param>
/// <param name="Quantile">The one-sided quantile planned for: 1 − fraction, lower when whole replicas, the scale-down delay or the plan's other hours leave risk unspent, higher when the plan's tolerance holds rises below their quantile.</param>
/// <param name="Point">The point forecast.</param>
/// <param name="QuantileLoad">The forecast's quantile: the point plus the model's upper backtest error at the quantile (in units of
/// the hour's band margin), or without them the band's upper margin scaled from its level to the quantile.</param>
/// <param name="Load">The load planned at the target: max(point, quantile load × target).</param>
/// <param name="QuantileBinds">Whether the quantile (not the point at the target) set the count.</param>
/// <param name="FromBacktest">Whether the quantile is the model's one-sided upper backtest errors at this hour (<see cref="UpperTail"/>),
/// rather than the band's margin extrapolated with normal quantiles.</param>
public sealed record RiskChoice(double Fraction, double Quantile, double Point, double QuantileLoad, double Load, bool QuantileBinds, bool FromBacktest = false)
{
    /// <summary>
    /// The choice for one forecast hour whose band [Lower, Upper] is a central interval at <paramref name="bandLevel"/> (calibrated
    /// from the backtest's residuals in training). With the model's upper backtest errors (<paramref name="tail"/>) the quantile is
    /// point + margin × scale(hour) × tail quantile(q); without them the upper margin is rescaled with normal quantiles:
    /// margin × z(q) / z((1 + level) / 2) (the calibration fixes the width at the band, the normal shape extrapolates from it).
    /// </summary>
    public static RiskChoice For(RiskPolicy risk, ForecastHour hour, double bandLevel, double targetUtilization, double? quantile = null, UpperTail? tail = null)
    {
        var point = Math.Max(0, hour.Point);
        var q = quantile ?? risk.Quantile;
        var quantileLoad = Math.Max(0, hour.Point + (Unit(hour, bandLevel, tail) * Standard(q, tail)));
        var atTarget = quantileLoad * targetUtilization;
        return new RiskChoice(risk.MaxUnderProvisionedHoursFraction, q, point, quantileLoad, Math.Max(point, atTarget), atTarget > point, tail is not null);
    }

    // The hour's error unit: with the backtest's tail its margin × the step's scale (the tail's quantiles are in those
    // units), else the normal σ the band implies (margin / z((1 + level) / 2)).
    private static double Unit(ForecastHour hour, double bandLevel, UpperTail? tail)
    {
        var margin = Math.Max(0, hour.Upper - hour.Point);
        return tail is null ? margin / NormalQuantile((1 + bandLevel) / 2) : margin * tail.ScaleAt(hour.Hour);
    }

    // The quantile q of the error in units, and P(error > x units): the backtest's tail, else the standard normal's.
    private static double Standard(double q, UpperTail? tail) => tail?.Quantile(q) ?? NormalQuantile(q);

    private static double Exceeds(double x, UpperTail? tail) => tail?.Tail(x) ?? NormalTail(x);

    /// <summary>
    /// The one quantile for a plan's forecast hours, so that the expected share of under-provisioned hours is the stated
    /// fraction f at the replica counts actually planned. Each hour's load is the point plus an error distributed as the
    /// model's upper backtest errors at that hour (<paramref name="tail"/>), or without them normal with σ from its band
    /// (margin / z((1 + level) / 2)); the formulas below are written for the normal case, Φ being the tail's where there is
    /// one. For a trial tail u, an hour gets n(u) = max(⌈point / (target·c)⌉, ⌈Q(1 − u) / c⌉,
    /// its lower bound) whole replicas of capacity c and misses with 1 − Φ((n(u)·c − point)/σ); the plan takes the largest u
    /// (q = 1 − u ≤ 1 − f) whose mean over hours stays within f. Risk an hour cannot use is spent where the band is wide
    /// instead of being bought twice: its point at the target already covers it, or rounding up to whole replicas (large at
    /// small counts: one replica of five is a fifth of the capacity) or its minimum leaves headroom beyond the quantile.
    /// Without a capacity per replica (a job's rate also pays for backlog and restarts) counts are taken as continuous:
    /// an hour then misses with min(p₀, u), p₀ = 1 − Φ(point·(1/target − 1)/σ). With no such hours q = 1 − f.
    /// <paramref name="planned"/>, when given, returns the counts the plan will actually run at these hours for a trial
    /// quantile (after its scale-down delay, tolerance and step limits; null if it cannot say): the risk is taken at those
    /// counts instead of n(u). A held count is then seen to leave its hour's share unused, and a step the tolerance
    /// suppressed to take more than its share.
    /// </summary>
    public static double PlanQuantile(RiskPolicy risk, IReadOnlyList<RiskHour> hours, double bandLevel, double? capacity,
        Func<double, int[]?>? planned = null, UpperTail? tail = null)
    {
        var f = risk.MaxUnderProvisionedHoursFraction;
        if (hours.Count == 0)
        {
            return 1 - f;
        }
        var c = capacity is > 0 and < double.PositiveInfinity ? capacity : null;
        // Per hour: the point, σ, and the risk when it does not depend on u (its count is the same at u = f and u = 0.5, as
        // when the point at the target binds): most hours, so bisection evaluates only the few whose count moves.
        var point = new double[hours.Count];
        var sigma = new double[hours.Count];
        var fixedRisk = new double[hours.Count];
        var zHigh = Standard(1 - f, tail);
        var zMedian = Standard(0.5, tail);
        for (var i = 0; i < hours.Count; i++)
        {
            var h = hours[i];
            point[i] = Math.Max(0, h.Hour.Point);
            sigma[i] = Unit(h.Hour, bandLevel, tail);
            fixedRisk[i] = double.NaN;
            if (c is double perReplica && CountAt(i, zHigh, perReplica) == CountAt(i, zMedian, perReplica))
            {
                fixedRisk[i] = RiskAt(i, CountAt(i, zMedian, perReplica), perReplica);
            }
        }
        int CountAt(int i, double z, double perReplica) => Math.Max(hours[i].Lower,
            Math.Max(Count(point[i] / (hours[i].TargetUtilization * perReplica)), Count(Math.Max(0, point[i] + (sigma[i] * z)) / perReplica)));
        double RiskAt(int i, int count, double perReplica) =>
            sigma[i] > 0 ? Exceeds(((count * perReplica) - point[i]) / sigma[i], tail) : count * perReplica >= point[i] ? 0 : 1;
        double Expected(double u)
        {
            var z = Standard(1 - u, tail);
            var sum = 0.0;
            if (c is double each && planned?.Invoke(1 - u) is { } counts)
            {
                for (var i = 0; i < hours.Count; i++)
                {
                    sum += RiskAt(i, counts[i], each);
                }
                return sum / hours.Count;
            }
            for (var i = 0; i < hours.Count; i++)
            {
                if (c is not double perReplica)
                {
                    var headroom = point[i] * ((1 / hours[i].TargetUtilization) - 1);
                    var p0 = sigma[i] > 0 ? Exceeds(headroom / sigma[i], tail) : headroom >= 0 ? 0 : 1;
                    sum += Math.Min(p0, u);
                }
                else
                {
                    sum += double.IsNaN(fixedRisk[i]) ? RiskAt(i, CountAt(i, z, perReplica), perReplica) : fixedRisk[i];
                }
            }
            return sum / hours.Count;
        }
        // The quantile stays at or above the median: below it the point at the target binds anyway. Expected(u) grows with u
        // (a lower quantile never adds a replica before smoothing; after it, the tolerance can bend that by a replica here and
        // there), so bisection finds the largest u within f. Counts move in whole replicas, so u to 1e-7 is as exact as 40 steps.
        double lo = f, hi = 0.5;
        if (Expected(hi) <= f)
        {
            return 1 - hi;
        }
        if (planned is not null && Expected(f) > f)
        {
            // Smoothing takes risk: hours the tolerance holds below their quantile's count (a rise within 10% of the count
            // before) are short more often than the quantile says, so the plan needs a quantile above 1 − f to meet f.
            (lo, hi) = (f * MinTailShare, f);
            if (Expected(lo) > f)
            {
                return 1 - lo;
            }
        }
        for (var k = 0; k < 40 && hi - lo > 1e-7; k++)
        {
            var mid = 0.5 * (lo + hi);
            (lo, hi) = Expected(mid) <= f ? (mid, hi) : (lo, mid);
        }
        return 1 - lo;
    }

    // The highest quantile the plan goes to when smoothing takes risk: 1 − f/100 (0.99995 at f = 0.005).
    private const double MinTailShare = 0.01;

    // Whole replicas for a load in replicas, as the planner rounds (PlanningContext.CeilCount).
    private static int Count(double raw) => PlanningContext.CeilCount(raw);

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
        ? string.Create(CultureInfo.InvariantCulture, $"forecast quantile {Quantile:G4} = {QuantileLoad:G6} must fit at full capacity (risk {Fraction:G3} of under-provisioned hours{(Quantile < 1 - Fraction - 1e-12 ? " over the plan at its whole-replica counts, the share the plan's other hours leave unused spent here" : Quantile > 1 - Fraction + 1e-12 ? " over the plan at its counts, raised for the hours its tolerance holds below their quantile" : "")}), i.e. load {Load:G6} at the target; point {Point:G6}; {Source}")
        : string.Create(CultureInfo.InvariantCulture, $"forecast point {Point:G6} at the target (its quantile {Quantile:G4} = {QuantileLoad:G6} fits at full capacity: risk {Fraction:G3} met; {Source})");

    // Where the quantile comes from, for the sentence.
    private string Source => FromBacktest
        ? "the quantile of how far load rose above the model's backtest forecasts at this hour of day"
        : "the quantile extrapolated from the forecast band with normal quantiles";

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
