fn main() {
    eprintln!("resizer-aggregate: not built yet");
    std::process::exit(1);
}
