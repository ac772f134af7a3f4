"""petriflow.simulate"""
