using PtActors.Actors;
using PtActors.Engine;
using Xunit;

namespace PtActors.Actors.Tests;

/// <summary>A table image in pieces that fit the transport's frames, and back (<see cref="ImageParts"/>).</summary>
public sealed class ImagePartsTests
{
    private static DomainImage Image(string name, int canonical, int memory)
    {
        var c = new byte[canonical];
        var m = new byte[memory];
        for (int i = 0; i < c.Length; i++)
            c[i] = (byte)(i * 7 + 1);
        for (int i = 0; i < m.Length; i++)
            m[i] = (byte)(i * 13 + 5);
        return new DomainImage(name, 17, c, m);
    }

    [Theory]
    [InlineData(0, 0, 4)]        // an empty image: one empty piece
    [InlineData(3, 0, 4)]
    [InlineData(0, 9, 4)]
    [InlineData(5, 11, 4)]       // a piece straddles the canonical form and the memory
    [InlineData(8, 8, 4)]        // pieces end exactly where the canonical form does
    [InlineData(5, 11, 100)]     // one piece
    public void AnImageSplitIntoPiecesComesBackWhole(int canonical, int memory, int partBytes)
    {
        var image = Image("dom0001", canonical, memory);
        var parts = ImageParts.Split(image, partBytes).ToList();
        Assert.Equal(Math.Max(1, (canonical + memory + partBytes - 1) / partBytes), parts.Count);
        Assert.All(parts, p => Assert.True(p.Bytes.Length <= partBytes));
        var assembler = new ImageParts.Assembler();
        DomainImage? back = null;
        for (int i = 0; i < parts.Count; i++)
        {
            back = assembler.Add(parts[i]);
            Assert.Equal(i == parts.Count - 1, back is not null);
        }
        Assert.Equal((image.Name, image.TablePages), (back!.Name, back.TablePages));
        Assert.Equal(image.Canonical, back.Canonical);
        Assert.Equal(image.Memory, back.Memory);
    }

    [Fact]
    public void PiecesOfSeveralDomainsInterleaveAndAFirstPieceStartsAfresh()
    {
        var a = ImageParts.Split(Image("a", 6, 6), 4).ToList();
        var b = ImageParts.Split(Image("b", 2, 3), 4).ToList();
        var assembler = new ImageParts.Assembler();
        Assert.Null(assembler.Add(a[0]));
        Assert.Null(assembler.Add(b[0]));
        Assert.Null(assembler.Add(a[1]));
        // The unit sent a's image again (a lane rebuilt at the run's end): its first piece starts over.
        Assert.Null(assembler.Add(a[0]));
        Assert.Null(assembler.Add(a[1]));
        Assert.NotNull(assembler.Add(b[1]));
        Assert.Equal(Image("a", 6, 6).Memory, assembler.Add(a[2])!.Memory);
    }

    [Fact]
    public void APieceOutOfOrderIsRefused()
    {
        var parts = ImageParts.Split(Image("a", 6, 6), 4).ToList();
        var assembler = new ImageParts.Assembler();
        Assert.Contains("without its first piece", Assert.Throws<InvalidOperationException>(() => assembler.Add(parts[1])).Message);
        assembler.Add(parts[0]);
        Assert.Contains("does not follow the 4 bytes received", Assert.Throws<InvalidOperationException>(() => assembler.Add(parts[2])).Message);
    }

    [Fact]
    public void AnImageLargerThanAFrameTravelsInPiecesUnderThePartSize()
    {
        var image = Image("big", 3 << 20, 9 << 20);
        var parts = ImageParts.Split(image).ToList();
        Assert.Equal(3, parts.Count);
        Assert.All(parts, p => Assert.True(p.Bytes.Length <= IotlbActor.ImagePartBytes));
    }
}
