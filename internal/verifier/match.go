package verifier

// routeIndex finds the first route (in config order) matching a path
// without scanning every route: routes hang in a tree of path segments at
// the node of their literal prefix (the segments before their first glob),
// so a lookup walks the path's segments once and only tests the routes
// whose literal prefix is a prefix of the path. Exact and prefix routes are
// found in time proportional to the path's depth; routes that share a
// literal prefix and differ only after a glob are tested in order, as
// before.
type routeIndex struct {
	root indexNode
}

type indexNode struct {
	children map[string]*indexNode
	routes   []indexedRoute // in config order
}

type indexedRoute struct {
	order int
	route *Route
}

func newRouteIndex(routes []*Route) *routeIndex {
	idx := &routeIndex{}
	for i, r := range routes {
		n := &idx.root
		for _, seg := range r.Pattern.segments[:r.Pattern.literalDepth()] {
			child := n.children[seg]
			if child == nil {
				if n.children == nil {
					n.children = map[string]*indexNode{}
				}
				child = &indexNode{}
				n.children[seg] = child
			}
			n = child
		}
		n.routes = append(n.routes, indexedRoute{order: i, route: r})
	}
	return idx
}

// match returns the first route, in config order, that matches a clean
// path, or nil: the same answer as testing every route in order.
func (idx *routeIndex) match(clean string) *Route {
	segs := splitPath(clean)
	var best *Route
	bestOrder := -1
	n := &idx.root
	for depth := 0; ; depth++ {
		for _, ir := range n.routes {
			if bestOrder >= 0 && ir.order > bestOrder {
				break
			}
			if ir.route.Pattern.matchSegments(segs) {
				best, bestOrder = ir.route, ir.order
				break
			}
		}
		if depth == len(segs) {
			return best
		}
		if n = n.children[segs[depth]]; n == nil {
			return best
		}
	}
}
