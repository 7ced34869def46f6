// Writes the small test images of this folder with Leptonica's built-in bitmap font, so
// that no image tool is needed. Run from the repository root:
//   g++ -std=c++17 tests/data/images/generate.cc -o /tmp/gen $(pkg-config --cflags --libs lept)
//   /tmp/gen tests/data/images
#include <leptonica/allheaders.h>

#include <cstdio>
#include <string>

namespace {

// A white 8-bit grey image with `text` in black, 20 px margins.
PIX* TextImage(const char* text) {
  L_BMF* font = bmfCreate(nullptr, 14);
  l_int32 width = 0;
  bmfGetStringWidth(font, text, &width);
  PIX* pix = pixCreate(width + 40, 3 * font->lineheight, 8);
  pixSetAll(pix);
  l_int32 overflow = 0;
  pixSetTextline(pix, font, text, 0x00000000, 20, 2 * font->lineheight, nullptr, &overflow);
  bmfDestroy(&font);
  return pix;
}

// A 33x17 RGB gradient.
PIX* SmallColorImage() {
  PIX* pix = pixCreate(33, 17, 32);
  for (int y = 0; y < 17; ++y) {
    for (int x = 0; x < 33; ++x) pixSetRGBPixel(pix, x, y, x * 7, y * 15, 128);
  }
  return pix;
}

bool Check(int failed, const std::string& path) {
  if (failed) std::fprintf(stderr, "cannot write %s\n", path.c_str());
  return !failed;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : ".";
  PIX* text = TextImage("Order 12345678");
  PIX* small = SmallColorImage();
  bool ok = true;
  ok &= Check(pixWrite((dir + "/order_12345678.png").c_str(), text, IFF_PNG), "png");
  ok &= Check(pixWriteJpeg((dir + "/order_12345678.jpg").c_str(), text, 90, 0), "jpg");
  ok &= Check(pixWriteWebP((dir + "/order_12345678.webp").c_str(), text, 90, 0), "webp");
  ok &= Check(pixWrite((dir + "/small_rgb.png").c_str(), small, IFF_PNG), "small png");
  ok &= Check(pixWriteJpeg((dir + "/small_progressive.jpg").c_str(), small, 80, 1), "jpg");
  ok &= Check(pixWriteWebP((dir + "/small_lossless.webp").c_str(), small, 100, 1), "webp");
  pixDestroy(&text);
  pixDestroy(&small);
  return ok ? 0 : 1;
}
