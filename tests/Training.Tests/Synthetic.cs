namespace Forecaster.Training.Tests;

/// <summary>Deterministic synthetic hourly load for the tests.</summary>
internal static class Synthetic
{
    public static readonly DateTimeOffset Start = new(2024, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>Level + trend + daily and weekly cycles + Gaussian noise of standard deviation <paramref name="noise"/>.</summary>
    public static double[] Load(int n, double noise, int seed, double trend = 0.01, double weekly = 0)
    {
        var random = new Random(seed);
        var y = new double[n];
        for (int t = 0; t < n; t++)
        {
            y[t] = 100 + (trend * t)
                + (20 * Math.Sin(2 * Math.PI * t / 24)) + (6 * Math.Cos(4 * Math.PI * t / 24))
                + (weekly * (t % 168 >= 120 ? -1 : 0.4))
                + (noise * Gaussian(random));
        }
        return y;
    }

    public static double Gaussian(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}
