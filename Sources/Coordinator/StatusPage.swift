/// The status page's files (`StatusPage/`: plain HTML, CSS and JavaScript, no build step),
/// compiled into the binary so that a coordinator copied alone still serves them.
enum StatusPage {
    static let html = PackageResources.index_html

    /// The files the page loads, by name, with their content types.
    static let assets: [String: (type: String, bytes: [UInt8])] = [
        "status.css": ("text/css; charset=utf-8", PackageResources.status_css),
        "status.js": ("text/javascript; charset=utf-8", PackageResources.status_js),
    ]
}
