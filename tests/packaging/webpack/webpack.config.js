// webpack 5 as a fresh app has it: no loaders, no rule for .wasm. The package's
// `new URL("./dist/core_bg.wasm", import.meta.url)` is an asset module of webpack's own.
import HtmlWebpackPlugin from "html-webpack-plugin";

export default {
  entry: "./src/index.js",
  output: { clean: true },
  plugins: [new HtmlWebpackPlugin({ template: "./src/index.html" })],
};
