namespace Forecaster.Training.Series;

/// <summary>One raw observation of a series.</summary>
public readonly record struct Observation(DateTimeOffset Timestamp, double Value);

/// <summary>A series on a regular grid; <see cref="double.NaN"/> marks a missing point.</summary>
public sealed record RegularSeries(TimeGrid Grid, double[] Values);

/// <summary>How observations falling into the same grid step are combined.</summary>
public enum Aggregation
{
    /// <summary>Mean of the observations (load averaged over the step).</summary>
    Mean,

    /// <summary>Maximum of the observations (peak load in the step).</summary>
    Max,
}

/// <summary>Puts unordered observations onto a regular grid, aggregating finer data and leaving gaps as NaN.</summary>
public static class SeriesBuilder
{
    /// <summary>
    /// Builds the series' grid from <paramref name="observations"/> (any order, duplicates allowed).
    /// The grid keeps the series' own phase when every timestamp sits on it (e.g. hourly data at :30);
    /// otherwise (finer data such as minutes) steps are aligned on whole multiples of <paramref name="step"/> (day boundaries for steps that divide a day).
    /// </summary>
    public static RegularSeries Build(IReadOnlyList<Observation> observations, TimeSpan step, Aggregation aggregation = Aggregation.Mean)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(step, TimeSpan.Zero);
        if (observations.Count == 0)
        {
            throw new ArgumentException("A series needs at least one observation.", nameof(observations));
        }

        long first = long.MaxValue, last = long.MinValue;
        foreach (var o in observations)
        {
            first = Math.Min(first, o.Timestamp.UtcTicks);
            last = Math.Max(last, o.Timestamp.UtcTicks);
        }
        long offset = Mod(first, step.Ticks);
        bool ownGrid = observations.All(o => Mod(o.Timestamp.UtcTicks, step.Ticks) == offset);
        long origin = ownGrid ? first : first - offset;

        int n = checked((int)((last - origin) / step.Ticks) + 1);
        var values = new double[n];
        var counts = new int[n];
        Array.Fill(values, aggregation == Aggregation.Max ? double.NegativeInfinity : 0.0);
        foreach (var o in observations)
        {
            if (double.IsNaN(o.Value))
            {
                continue;
            }
            int i = (int)((o.Timestamp.UtcTicks - origin) / step.Ticks);
            values[i] = aggregation == Aggregation.Max ? Math.Max(values[i], o.Value) : values[i] + o.Value;
            counts[i]++;
        }
        for (int i = 0; i < n; i++)
        {
            values[i] = counts[i] == 0 ? double.NaN : aggregation == Aggregation.Mean ? values[i] / counts[i] : values[i];
        }
        return new RegularSeries(new TimeGrid(new DateTimeOffset(origin, TimeSpan.Zero), step), values);
    }

    private static long Mod(long a, long m) => ((a % m) + m) % m;
}
