using PtActors.Engine;

namespace PtActors.Actors;

/// <summary>
/// A domain's table image (<see cref="DomainImage"/>) in pieces that fit the transport's frames
/// (<see cref="IotlbActor.ImagePart"/>), and back.
/// </summary>
public static class ImageParts
{
    /// <summary>The pieces <paramref name="image"/> travels in, in order (one, empty, for an empty image).</summary>
    public static IEnumerable<IotlbActor.ImagePart> Split(DomainImage image, int partBytes = IotlbActor.ImagePartBytes)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentOutOfRangeException.ThrowIfLessThan(partBytes, 1);
        int canonical = image.Canonical.Length, total = canonical + image.Memory.Length;
        int offset = 0;
        do
        {
            var bytes = new byte[Math.Min(partBytes, total - offset)];
            var to = bytes.AsSpan();
            int from = offset;
            if (from < canonical)
            {
                int n = Math.Min(canonical - from, to.Length);
                image.Canonical.AsSpan(from, n).CopyTo(to);
                to = to[n..];
                from += n;
            }
            if (!to.IsEmpty)
                image.Memory.AsSpan(from - canonical, to.Length).CopyTo(to);
            yield return new IotlbActor.ImagePart(image.Name, image.TablePages, canonical, image.Memory.Length, offset, bytes);
            offset += bytes.Length;
        }
        while (offset < total);
    }

    /// <summary>Puts images back together from their pieces, as they arrive (a domain's in order).</summary>
    public sealed class Assembler
    {
        private readonly Dictionary<string, (IotlbActor.ImagePart First, byte[] Bytes, int Filled)> _partial = new(StringComparer.Ordinal);

        /// <summary>
        /// Adds <paramref name="part"/>; returns the domain's image once its last piece is in. A piece at offset 0
        /// starts the domain's image afresh (its unit sent it again).
        /// </summary>
        public DomainImage? Add(IotlbActor.ImagePart part)
        {
            ArgumentNullException.ThrowIfNull(part);
            int total = checked(part.CanonicalLength + part.MemoryLength);
            if (part.Offset == 0 || !_partial.TryGetValue(part.Domain, out var entry))
            {
                if (part.Offset != 0)
                    throw new InvalidOperationException($"a piece of {part.Domain}'s table image at offset {part.Offset} without its first piece");
                entry = (part, new byte[total], 0);
            }
            var first = entry.First;
            if (first.CanonicalLength != part.CanonicalLength || first.MemoryLength != part.MemoryLength || first.TablePages != part.TablePages
                || part.Offset != entry.Filled || part.Offset + part.Bytes.Length > total)
                throw new InvalidOperationException($"a piece of {part.Domain}'s table image at offset {part.Offset} does not follow the {entry.Filled} bytes received");
            part.Bytes.CopyTo(entry.Bytes, part.Offset);
            entry.Filled += part.Bytes.Length;
            if (entry.Filled < total)
            {
                _partial[part.Domain] = entry;
                return null;
            }
            _partial.Remove(part.Domain);
            return new DomainImage(part.Domain, part.TablePages, entry.Bytes[..part.CanonicalLength], entry.Bytes[part.CanonicalLength..]);
        }
    }
}
