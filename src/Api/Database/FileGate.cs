namespace Forecaster.Api.Database;

/// <summary>An exclusive lock between processes on one machine: an open file with no sharing.</summary>
sealed class FileGate : IAsyncDisposable
{
    readonly FileStream _stream;

    FileGate(FileStream stream) => _stream = stream;

    public static async Task<FileGate> AcquireAsync(string path, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (true)
        {
            try
            {
                return new FileGate(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }
            catch (IOException) when (Environment.TickCount64 < deadline)
            {
                await Task.Delay(100, ct);
            }
        }
    }

    public ValueTask DisposeAsync() => _stream.DisposeAsync();
}
