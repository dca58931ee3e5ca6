namespace Forecaster.Training.Series;

/// <summary>
/// The middle values of a sample, as sorting it would place them, found by selection (Hoare's FIND, CACM 1961: expected
/// O(n) against the sort's O(n log n)): the cleaning and level-shift steps take several medians of every series per fit.
/// </summary>
public static class OrderStatistics
{
    /// <summary>
    /// The values at positions ⌊(n − 1)/2⌋ and ⌊n/2⌋ of <paramref name="values"/> in ascending order (equal for odd n);
    /// <paramref name="values"/> is left as it was. Needs n ≥ 1.
    /// </summary>
    /// <remarks>
    /// A nonzero number's position in the order fixes its bits, so selection returns what <see cref="Array.Sort(Array)"/>
    /// would; zeros (−0 and +0 compare equal but print differently) and NaN (sorted first) go through the sort itself.
    /// </remarks>
    public static (double Lower, double Upper) Middle(ReadOnlySpan<double> values)
    {
        int n = values.Length;
        if (n == 0)
        {
            throw new ArgumentException("No values.", nameof(values));
        }
        var a = n <= 512 ? stackalloc double[n] : new double[n];
        values.CopyTo(a);
        foreach (double v in a)
        {
            if (v == 0 || double.IsNaN(v))
            {
                a.Sort();
                return (a[(n - 1) / 2], a[n / 2]);
            }
        }
        int upper = n / 2;
        Select(a, upper);
        if (n % 2 == 1)
        {
            return (a[upper], a[upper]);
        }
        // After selection everything before `upper` is at most a[upper]: the lower middle is the largest of them.
        double lower = a[0];
        for (int i = 1; i < upper; i++)
        {
            lower = Math.Max(lower, a[i]);
        }
        return (lower, a[upper]);
    }

    // Rearranges a so that a[k] holds the k-th smallest value, with nothing larger before it and nothing smaller after it.
    private static void Select(Span<double> a, int k)
    {
        int lo = 0, hi = a.Length - 1;
        while (hi > lo)
        {
            // Median of three as the pivot (sorted runs, common in load data, stay linear).
            int mid = lo + ((hi - lo) / 2);
            if (a[mid] < a[lo])
            {
                (a[mid], a[lo]) = (a[lo], a[mid]);
            }
            if (a[hi] < a[lo])
            {
                (a[hi], a[lo]) = (a[lo], a[hi]);
            }
            if (a[hi] < a[mid])
            {
                (a[hi], a[mid]) = (a[mid], a[hi]);
            }
            double pivot = a[mid];
            int i = lo, j = hi;
            while (i <= j)
            {
                while (a[i] < pivot)
                {
                    i++;
                }
                while (a[j] > pivot)
                {
                    j--;
                }
                if (i <= j)
                {
                    (a[i], a[j]) = (a[j], a[i]);
                    i++;
                    j--;
                }
            }
            // Now a[lo..j] ≤ pivot ≤ a[i..hi], and anything between j and i equals the pivot.
            if (k <= j)
            {
                hi = j;
            }
            else if (k >= i)
            {
                lo = i;
            }
            else
            {
                return;
            }
        }
    }
}
