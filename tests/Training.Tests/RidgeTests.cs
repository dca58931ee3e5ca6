using Forecaster.Training.Regression;
using Forecaster.Training.Series;

namespace Forecaster.Training.Tests;

public class RidgeTests
{
    [Theory]
    [InlineData(47, 0, 300)]
    [InlineData(47, 120, 300)]
    [InlineData(23, 0, 90)]
    [InlineData(3, 5, 40)]
    [InlineData(4, 0, 33)]
    [InlineData(5, 2, 33)]
    [InlineData(36, 7, 700)]
    public void AccumulateAddsEachRowsProductsInRowOrderBitForBit(int p, int from, int to)
    {
        // The reference: one rank-one update of the upper triangle per row, each entry rounded once for the product and
        // once for the sum, as the ridge fits accumulated before register blocking (their forecasts must not move).
        var random = new Random(p + from);
        var x = Enumerable.Range(0, to * p).Select(_ => Synthetic.Gaussian(random) * 1e3).ToArray();
        var y = Enumerable.Range(0, to).Select(_ => Synthetic.Gaussian(random)).ToArray();
        var gRef = Enumerable.Range(0, p * p).Select(_ => random.NextDouble()).ToArray();
        var bRef = Enumerable.Range(0, p).Select(_ => random.NextDouble()).ToArray();
        var (g, b) = ((double[])gRef.Clone(), (double[])bRef.Clone());
        for (int i = from; i < to; i++)
        {
            for (int a = 0; a < p; a++)
            {
                for (int c = a; c < p; c++)
                {
                    gRef[(a * p) + c] = (x[(i * p) + c] * x[(i * p) + a]) + gRef[(a * p) + c];
                }
            }
            for (int c = 0; c < p; c++)
            {
                bRef[c] = (x[(i * p) + c] * y[i]) + bRef[c];
            }
        }

        Ridge.Accumulate(x, y, p, from, to, g, b);

        Assert.Equal(gRef, g);
        Assert.Equal(bRef, b);
    }

    [Fact]
    public void RidgeRecoversKnownCoefficients()
    {
        var random = new Random(3);
        int n = 500, p = 4;
        double[] beta = [2, -1, 0.5, 3];
        var x = new double[n * p];
        var y = new double[n];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < p; j++)
            {
                x[(i * p) + j] = Synthetic.Gaussian(random);
                y[i] += beta[j] * x[(i * p) + j];
            }
            y[i] += 0.01 * Synthetic.Gaussian(random);
        }
        var g = new double[p * p];
        var b = new double[p];

        Ridge.Accumulate(x, y, p, 0, n, g, b);
        var (v, d) = Ridge.Decompose(g, p);
        var estimate = Ridge.Solve(v, d, b, lambda: 1e-6);
        var shrunk = Ridge.Solve(v, d, b, lambda: 1e4);

        for (int j = 0; j < p; j++)
        {
            Assert.Equal(beta[j], estimate[j], 2);
        }
        Assert.True(shrunk.Sum(Math.Abs) < 0.5 * beta.Sum(Math.Abs), "a large penalty shrinks the coefficients");
    }

    [Fact]
    public void RidgeModelLearnsTheWeeklyShapeAndUsesEventFlags()
    {
        var grid = new TimeGrid(Synthetic.Start, TimeSpan.FromHours(1));
        var holiday = DateOnly.FromDateTime(grid.At(24 * 40).UtcDateTime);
        var futureHoliday = DateOnly.FromDateTime(grid.At((24 * 43) + 5).UtcDateTime);
        var y = Synthetic.Load(24 * 42, noise: 0.5, seed: 4, weekly: 10);
        for (int t = 24 * 40; t < 24 * 41; t++)
        {
            y[t] -= 30; // the holiday's load drop
        }

        var model = RidgeModel.Fit(y, grid, new RidgeOptions(), [holiday, futureHoliday])!;
        var forecast = model.Forecast(48).Point;
        var truth = Synthetic.Load((24 * 42) + 48, noise: 0, seed: 4, weekly: 10)[(24 * 42)..];

        Assert.Equal(2, model.Features.Events.Length);
        // Day 1 is ordinary, day 2 the future holiday: about 30 lower than the ordinary pattern.
        Assert.True(truth.Take(24).Zip(forecast).Average(p => Math.Abs(p.First - p.Second)) < 2.5);
        Assert.InRange(truth.Skip(24).Zip(forecast.Skip(24)).Average(p => p.First - p.Second), 20, 40);
    }
}
