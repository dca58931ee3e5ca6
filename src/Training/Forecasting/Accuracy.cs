namespace Forecaster.Training.Forecasting;

/// <summary>Forecast accuracy as defined for the M4 competition (Makridakis, Spiliotis &amp; Assimakopoulos, IJF 2020).</summary>
public static class Accuracy
{
    /// <summary>MASE scale Q = mean |y_t − y_{t−m}| over the in-sample points (missing pairs skipped).</summary>
    public static double MaseScale(ReadOnlySpan<double> y, int m)
    {
        double sum = 0;
        int count = 0;
        for (int t = m; t < y.Length; t++)
        {
            double d = y[t] - y[t - m];
            if (!double.IsNaN(d))
            {
                sum += Math.Abs(d);
                count++;
            }
        }
        return count == 0 || sum == 0 ? 1e-9 : sum / count;
    }

    /// <summary>Mean absolute error scaled by <paramref name="scale"/>, over the non-missing actuals.</summary>
    public static double Mase(ReadOnlySpan<double> actual, ReadOnlySpan<double> forecast, double scale)
    {
        double sum = 0;
        int count = 0;
        for (int h = 0; h < actual.Length; h++)
        {
            if (!double.IsNaN(actual[h]))
            {
                sum += Math.Abs(actual[h] - forecast[h]);
                count++;
            }
        }
        return count == 0 ? double.NaN : sum / count / scale;
    }

    /// <summary>sMAPE = mean 200·|y − f| / (|y| + |f|), over the non-missing actuals (a 0/0 step counts as 0).</summary>
    public static double Smape(ReadOnlySpan<double> actual, ReadOnlySpan<double> forecast)
    {
        double sum = 0;
        int count = 0;
        for (int h = 0; h < actual.Length; h++)
        {
            if (!double.IsNaN(actual[h]))
            {
                double d = Math.Abs(actual[h]) + Math.Abs(forecast[h]);
                sum += d == 0 ? 0 : 200 * Math.Abs(actual[h] - forecast[h]) / d;
                count++;
            }
        }
        return count == 0 ? double.NaN : sum / count;
    }
}
