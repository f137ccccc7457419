"""The decision desk: symptoms to routes, the minimum proof from the store, the decision."""
