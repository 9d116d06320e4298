using PtActors.Engine;
using PtActors.Engine.Dma;

namespace PtActors.TestSupport;

/// <summary>One operation the model ran, with its result and (an unmap that removed something) its notice.</summary>
internal readonly record struct Ran(DmaOp Op, DmaOpResult Result, UnmapNotice? Notice);

/// <summary>
/// Single-operation conveniences for tests, each one call of <see cref="DomainModel.ApplyBatch"/> (the model's
/// only apply API): a test reads one result where the simulator reads a window's outcome.
/// </summary>
internal static class ModelCalls
{
    /// <summary>Applies <paramref name="op"/> alone: true with what it did when it ran now; false when it waits for a lock.</summary>
    public static bool Submit(this DomainModel m, in DmaOp op, out Ran ran)
    {
        var outcome = new BatchOutcome();
        m.ApplyBatch([], [], 0, [op], outcome);
        if (outcome.Results.Count == 0)
        {
            ran = default;
            return false;
        }
        var r = outcome.Results[0];
        ran = new Ran(op, r, outcome.Notices.Count > 0 ? outcome.Notices[0] : null);
        return true;
    }

    /// <summary>Releases unmap <paramref name="id"/> at <paramref name="atNs"/>; the outcome of what that let through.</summary>
    public static BatchOutcome Release(this DomainModel m, long id, ulong atNs)
    {
        var outcome = new BatchOutcome();
        m.ApplyBatch([], [id], atNs, [], outcome);
        return outcome;
    }
}
