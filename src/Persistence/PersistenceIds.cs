namespace PtActors.Persistence;

/// <summary>
/// Persistence ids of a run's actors are <c>RUNID/DOMAIN</c>, so one database holds many runs.
/// Both parts are 1..64 characters of ASCII letters, digits, '.', '_' and '-' (safe in file names,
/// URLs and SQL LIKE prefixes), and the parts never contain the '/' separator.
/// </summary>
public static class PersistenceIds
{
    public const int MaxPartLength = 64;

    public const char Separator = '/';

    /// <summary>The persistence id <c>RUNID/DOMAIN</c>; throws <see cref="ArgumentException"/> for invalid parts.</summary>
    public static string For(string runId, string domain)
    {
        ThrowIfInvalid(runId, nameof(runId));
        ThrowIfInvalid(domain, nameof(domain));
        return string.Concat(runId, "/", domain);
    }

    /// <summary>Splits <c>RUNID/DOMAIN</c>; false for anything else.</summary>
    public static bool TryParse(string persistenceId, out string runId, out string domain)
    {
        runId = domain = string.Empty;
        if (persistenceId is null) return false;
        int slash = persistenceId.IndexOf(Separator, StringComparison.Ordinal);
        if (slash < 0) return false;
        string r = persistenceId[..slash], d = persistenceId[(slash + 1)..];
        if (!IsValidPart(r) || !IsValidPart(d)) return false;
        (runId, domain) = (r, d);
        return true;
    }

    /// <summary>The prefix every persistence id of a run starts with (<c>RUNID/</c>).</summary>
    public static string RunPrefix(string runId)
    {
        ThrowIfInvalid(runId, nameof(runId));
        return runId + Separator;
    }

    /// <summary>True for a valid run id or domain name.</summary>
    public static bool IsValidPart(string? part)
    {
        if (string.IsNullOrEmpty(part) || part.Length > MaxPartLength) return false;
        foreach (char c in part)
        {
            if (c is not ((>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '.' or '_' or '-')) return false;
        }
        return part is not ("." or "..");
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming <paramref name="what"/> unless <paramref name="part"/> is valid.</summary>
    public static void ThrowIfInvalid(string? part, string what)
    {
        if (!IsValidPart(part))
            throw new ArgumentException($"{what} '{part}' is invalid: use 1..{MaxPartLength} characters of A-Z a-z 0-9 . _ -", what);
    }
}
