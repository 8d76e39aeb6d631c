#include "serial_scanner/aim_symbology.h"

namespace portier::drivers {

std::optional<std::string_view> aim_symbology(char code) {
  // ISO/IEC 15424:2008, table 1.
  switch (code) {
    case 'A':
      return "Code 39";
    case 'B':
      return "Telepen";
    case 'C':
      return "Code 128";
    case 'D':
      return "Code One";
    case 'E':
      return "EAN/UPC";
    case 'F':
      return "Codabar";
    case 'G':
      return "Code 93";
    case 'H':
      return "Code 11";
    case 'I':
      return "ITF";
    case 'K':
      return "Code 16K";
    case 'L':
      return "PDF417";
    case 'M':
      return "MSI";
    case 'N':
      return "Anker";
    case 'O':
      return "Codablock";
    case 'P':
      return "Plessey";
    case 'Q':
      return "QR Code";
    case 'R':
      return "Straight 2 of 5 (2-bar start/stop)";
    case 'S':
      return "Straight 2 of 5 (3-bar start/stop)";
    case 'T':
      return "Code 49";
    case 'U':
      return "MaxiCode";
    case 'X':
      return "other";
    case 'Y':
      return "system expansion";
    case 'Z':
      return "non-barcode";
    case 'c':
      return "Channel Code";
    case 'd':
      return "Data Matrix";
    case 'e':
      return "GS1 DataBar";
    case 'o':
      return "OCR";
    case 'p':
      return "PosiCode";
    case 's':
      return "SuperCode";
    case 'z':
      return "Aztec";
    default:
      return std::nullopt;
  }
}

}  // namespace portier::drivers
